"""Users in each role group (the groups come from the dashboard's data migration)."""

from __future__ import annotations

import pytest


def _user_in(username: str, group_name: str | None):
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user(username, password=f"pw-{username}-1")
    if group_name:
        user.groups.add(Group.objects.get(name=group_name))
    return user


@pytest.fixture
def operator_user(db):
    return _user_in("op1", "operator")


@pytest.fixture
def engineer_user(db):
    return _user_in("eng1", "engineer")


@pytest.fixture
def ungrouped_user(db):
    return _user_in("nogroup", None)
