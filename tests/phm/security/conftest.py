"""Clients signed in with each role (groups come from the dashboard's data migration)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient


def _user_in(username: str, group_name: str | None):
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user(username, password=f"pw-{username}-1")
    if group_name:
        user.groups.add(Group.objects.get(name=group_name))
    return user


def _token_client(user) -> APIClient:
    from rest_framework.authtoken.models import Token

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def engineer(db):
    return _user_in("eng-sec", "engineer")


@pytest.fixture
def operator(db):
    return _user_in("op-sec", "operator")


@pytest.fixture
def engineer_api(engineer) -> APIClient:
    return _token_client(engineer)


@pytest.fixture
def operator_api(operator) -> APIClient:
    return _token_client(operator)


@pytest.fixture
def operator_page(client, operator):
    client.force_login(operator)
    return client


@pytest.fixture
def tiny_model(monkeypatch):
    """The assistant's tiny real model (as in tests/phm/assistant), so /assistant/ask answers fast."""
    from models import answering
    from tests.phm.assistant.helpers import tiny_language_model

    monkeypatch.setattr(answering, "_model", tiny_language_model())
    monkeypatch.setattr(answering, "DEFAULT_MAX_NEW_TOKENS", 8)
