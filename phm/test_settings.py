"""Settings for the test suite: the app's settings plus

- a file-based SQLite test database (so a Celery worker started by a test sees the same data),
- a ``postgres`` alias on the PostgreSQL server when it is reachable, so storage tests run on
  both engines in one run (``PHM_TEST_POSTGRES_URL``, default the local server),
- media and the broker folder in a per-run temporary directory.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("PHM_DATA_ROOT", tempfile.mkdtemp(prefix="phm-test-"))

from phm.settings import *  # noqa: E402,F403
from phm.settings import DATA_ROOT, DATABASES  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Lockout and rate limits have their own tests (tests/phm/security), which switch them on; the
# rest of the suite logs in with client.login() (no request for axes) and makes many calls.
AXES_ENABLED = False
PHM_API_RATE = PHM_API_ANON_RATE = "off"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(Path(DATA_ROOT) / "test-default.sqlite3")}

POSTGRES_TEST_URL = os.environ.get("PHM_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/postgres")
POSTGRES_UNAVAILABLE_REASON = ""


def _postgres_reachable(url: str) -> str:
    """Return '' when a connection works, otherwise why not."""
    try:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), connect_timeout=2):
            return ""
    except Exception as exc:  # any failure means: skip the PostgreSQL half, and say why
        return f"PostgreSQL at {url} unreachable: {exc}".strip()


if os.environ.get("PHM_TEST_POSTGRES", "1") != "0" and "postgres" not in DATABASES:
    POSTGRES_UNAVAILABLE_REASON = _postgres_reachable(POSTGRES_TEST_URL)
    if not POSTGRES_UNAVAILABLE_REASON:
        import dj_database_url

        DATABASES["postgres"] = dj_database_url.parse(POSTGRES_TEST_URL)
        DATABASES["postgres"]["TEST"] = {"NAME": os.environ.get("PHM_TEST_POSTGRES_DB", f"test_phm_{os.getpid()}")}
elif os.environ.get("PHM_TEST_POSTGRES") == "0":
    POSTGRES_UNAVAILABLE_REASON = "PHM_TEST_POSTGRES=0"
