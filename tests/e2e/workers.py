"""Start a real Celery worker process for end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connections

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_database_url() -> str:
    """The URL of the test database the current process uses (file-based SQLite or PostgreSQL)."""
    db = connections["default"].settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgresql://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@contextmanager
def celery_worker(*, broker_url: str | None = None, queues: str = "ingest,cpu", log_path: Path, timeout_s: float = 90):
    """Run ``celery -A phm worker`` on the test database until the block ends."""
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "phm.settings"
    env["DATABASE_URL"] = test_database_url()
    env["PHM_DATA_ROOT"] = str(settings.DATA_ROOT)
    if broker_url:
        env["PHM_BROKER_URL"] = broker_url
    else:
        env.pop("PHM_BROKER_URL", None)
    log_file = open(log_path, "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "phm", "worker", "-Q", queues, "--pool=solo", "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=REPO_ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while "ready." not in log_path.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"celery worker did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log_file.close()
