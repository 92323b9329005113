"""Role groups, the page role rule and the page decorator."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from phm.dashboard import roles


def test_migration_creates_the_three_role_groups(db):
    assert set(Group.objects.filter(name__in=roles.ROLES).values_list("name", flat=True)) == {"operator", "engineer", "admin"}


def test_highest_group_wins(operator_user):
    operator_user.groups.add(Group.objects.get(name="engineer"))
    assert roles.group_role(User.objects.get(pk=operator_user.pk)) == "engineer"


def test_superuser_is_admin(db):
    assert roles.group_role(User.objects.create_superuser("root", password="x")) == "admin"


def test_user_without_group_has_no_role_on_pages(ungrouped_user):
    """Roles fail closed: no group, no access (issue 19)."""
    assert roles.group_role(ungrouped_user) is None and roles.page_role(ungrouped_user) is None
    assert not roles.has_role(ungrouped_user, "operator") and not roles.has_role(ungrouped_user, "engineer")


def test_unknown_role_name_is_an_error(operator_user):
    with pytest.raises(ValueError, match="unknown role 'boss'"):
        roles.has_role(operator_user, "boss")


def test_operator_gets_403_on_engineer_pages(client, operator_user):
    client.force_login(operator_user)
    assert client.get("/models/").status_code == 403
    assert client.get("/connectors/").status_code == 403


def test_engineer_opens_engineer_pages(client, engineer_user):
    client.force_login(engineer_user)
    assert client.get("/models/").status_code == 200
    assert client.get("/connectors/").status_code == 200


def test_anonymous_is_sent_to_login(client, db):
    for path in ("/", "/console/", "/chat/", "/models/"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), path


def test_menu_hides_engineer_links_from_operators(client, operator_user):
    client.force_login(operator_user)
    page = client.get("/console/").content.decode()
    assert 'href="/models/"' not in page and "op1 (operator)" in page


def test_phm_users_prints_passwords_that_log_in(db, client):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("phm_users", stdout=out)
    passwords = dict(line.split()[1::2] for line in out.getvalue().splitlines())  # "created operator password: X"
    assert set(passwords) == {"operator", "engineer"}
    assert client.login(username="operator", password=passwords["operator"])
    assert roles.group_role(User.objects.get(username="engineer")) == "engineer"
