"""Finding 8 of issue 19: login and API throttling, pagination bound, production settings, file
permissions of var/, Swagger UI without a CDN, Content-Security-Policy."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User

ROOT = Path(__file__).resolve().parents[3]


def _settings_in_subprocess(env: dict[str, str], *names: str) -> dict:
    """Import phm.settings in a fresh interpreter with ``env`` and read ``names`` (settings are
    computed at import, so this is how a deployment sees them)."""
    code = "import json, phm.settings as s; print(json.dumps({n: repr(getattr(s, n, None)) for n in %r}))" % (names,)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PHM_", "DJANGO_"))}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- login throttling -------------------------------------------------------------------------


@pytest.fixture
def axes_on(settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 5


def _login(client, username: str, password: str, ip: str = "10.0.0.1"):
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_login_is_locked_after_repeated_failures_even_with_the_right_password(client, axes_on, db):
    User.objects.create_user("alice", password="pw-alice-correct-1")
    codes = [_login(client, "alice", "wrong").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 200, 429]  # the form again with an error, then locked at the limit
    response = _login(client, "alice", "pw-alice-correct-1")
    assert response.status_code == 429 and b"too many" in response.content.lower()
    assert "_auth_user_id" not in client.session


def test_lockout_is_per_user_from_any_address(client, axes_on, db):
    User.objects.create_user("alice", password="pw-alice-correct-1")
    for n in range(5):
        _login(client, "alice", "wrong", ip=f"10.0.1.{n}")
    assert _login(client, "alice", "pw-alice-correct-1", ip="10.0.9.9").status_code == 429


def test_lockout_is_per_address_for_any_user(client, axes_on, db):
    User.objects.create_user("bob", password="pw-bob-correct-1")
    for n in range(5):
        _login(client, f"guess{n}", "wrong", ip="10.0.2.1")
    assert _login(client, "bob", "pw-bob-correct-1", ip="10.0.2.1").status_code == 429
    assert _login(client, "bob", "pw-bob-correct-1", ip="10.0.2.2").status_code == 302  # another address is fine


def test_lockout_backs_off_with_more_failures(settings, rf):
    from phm.login_lockout import lockout_cooloff

    settings.AXES_FAILURE_LIMIT = 5
    settings.PHM_LOGIN_LOCKOUT_BASE_S = 60
    settings.PHM_LOGIN_LOCKOUT_MAX_S = 3600
    assert [lockout_cooloff(failures=n).total_seconds() for n in (5, 6, 7, 20)] == [60, 120, 240, 3600]


def test_client_address_behind_a_proxy_is_the_one_the_proxy_saw(settings, rf):
    from phm.login_lockout import client_address

    request = rf.post("/accounts/login/", REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.7")
    settings.PHM_PROXY_COUNT = 0
    assert client_address(request) == "10.9.9.9"
    settings.PHM_PROXY_COUNT = 1
    assert client_address(request) == "203.0.113.7"  # not the client-chosen 1.2.3.4


# --- API throttling ---------------------------------------------------------------------------


def test_api_calls_past_the_token_rate_get_429(engineer_api, settings):
    settings.PHM_API_RATE = "3/min"
    codes = [engineer_api.get("/api/v1/sites").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert "Retry-After" in engineer_api.get("/api/v1/sites")


def test_api_rate_is_counted_per_token(engineer_api, operator_api, settings):
    settings.PHM_API_RATE = "2/min"
    assert [engineer_api.get("/api/v1/sites").status_code for _ in range(3)] == [200, 200, 429]
    assert operator_api.get("/api/v1/sites").status_code == 200


# --- production settings ----------------------------------------------------------------------


def test_https_settings_make_cookies_secure_and_send_hsts():
    values = _settings_in_subprocess({"PHM_HTTPS": "1"}, "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS", "SECURE_PROXY_SSL_HEADER")
    assert values == {"SESSION_COOKIE_SECURE": "True", "CSRF_COOKIE_SECURE": "True", "SECURE_HSTS_SECONDS": "31536000",
                      "SECURE_PROXY_SSL_HEADER": "('HTTP_X_FORWARDED_PROTO', 'https')"}


def test_plain_http_default_keeps_cookies_usable_on_a_lan():
    values = _settings_in_subprocess({}, "SESSION_COOKIE_SECURE", "SECURE_HSTS_SECONDS", "SESSION_COOKIE_AGE")
    assert values == {"SESSION_COOKIE_SECURE": "False", "SECURE_HSTS_SECONDS": "0", "SESSION_COOKIE_AGE": str(12 * 3600)}


def test_session_age_comes_from_the_environment():
    assert _settings_in_subprocess({"PHM_SESSION_AGE": "3600"}, "SESSION_COOKIE_AGE") == {"SESSION_COOKIE_AGE": "3600"}


def test_var_folder_is_private_and_database_owner_only(tmp_path):
    data_root = tmp_path / "var"
    _settings_in_subprocess({"PHM_DATA_ROOT": str(data_root)}, "DATA_ROOT")
    assert stat.S_IMODE(data_root.stat().st_mode) == 0o700
    from phm.files import secure_sqlite_file

    database = data_root / "phm.sqlite3"
    database.write_bytes(b"")
    database.chmod(0o644)
    secure_sqlite_file(database)
    assert stat.S_IMODE(database.stat().st_mode) == 0o600


def test_migrate_leaves_the_sqlite_database_owner_only(tmp_path):
    data_root = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHM_", "DJANGO_"))}
    env.update({"PHM_DATA_ROOT": str(data_root), "DJANGO_SETTINGS_MODULE": "phm.settings"})
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=300, capture_output=True)
    assert stat.S_IMODE((data_root / "phm.sqlite3").stat().st_mode) == 0o600


# --- pages ------------------------------------------------------------------------------------


def test_swagger_ui_is_served_from_the_installed_package(operator_page):
    page = operator_page.get("/api/docs/").content.decode()
    assert "cdn" not in page.lower() and "@latest" not in page and "swagger-ui" in page
    script = operator_page.get("/api/docs/?script=")
    assert script.status_code == 200


def test_pages_send_a_content_security_policy(operator_page):
    policy = operator_page.get("/").headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]


def test_plotly_charts_carry_the_csp_nonce(operator_page, plant):
    response = operator_page.get("/equipment/P-101/")
    nonce = response.headers["Content-Security-Policy"].split("'nonce-")[1].split("'")[0]
    html = response.content.decode()
    inline = html.count("<script") - html.count("<script src=")
    assert inline > 0 and html.count(f'nonce="{nonce}"') >= inline
