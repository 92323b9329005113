"""phm_bootstrap: the admin with a token and the role demo users, stable across runs."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from rest_framework.authtoken.models import Token


def bootstrap() -> str:
    out = StringIO()
    call_command("phm_bootstrap", "--url", "http://127.0.0.1:9000/", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_creates_admin_token_and_role_users_with_stable_passwords():
    first = bootstrap()
    assert "ready at http://127.0.0.1:9000/" in first and first == bootstrap()  # same logins next time
    login_line = next(line for line in first.splitlines() if "login:" in line)
    admin_password = login_line.split("admin / ")[1].split()[0]
    operator_password = login_line.split("operator / ")[1].split(",")[0]
    assert authenticate(username="admin", password=admin_password).is_superuser
    operator = authenticate(username="operator", password=operator_password)
    assert list(operator.groups.values_list("name", flat=True)) == ["operator"]
    assert Token.objects.get(user__username="admin").key in first
