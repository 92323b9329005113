"""Real Celery processes (workers, beat) on the test database, for end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
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


class CeleryProcess:
    """``celery -A phm worker`` (solo pool, the given queues) or ``celery -A phm beat`` on the test
    database, started at once; ``wait_ready`` blocks until it says so, so several start in parallel.
    ``broker_url`` None means the embedded default broker (under the test's PHM_DATA_ROOT)."""

    def __init__(
        self, kind: str, *, name: str, broker_url: str | None, log_dir: Path, queues: str = "cpu,gpu", extra_env: Mapping[str, str] | None = None
    ) -> None:
        self.kind, self.name = kind, name
        self.log_path = log_dir / f"{name}.log"
        if kind == "worker":
            args = ["worker", "-Q", queues, "--pool=solo", "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"]
            self.ready_line = "ready."
        else:
            args = ["beat", "--schedule", str(log_dir / f"{name}-schedule")]
            self.ready_line = "beat: Starting"
        self.log_file = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "phm", *args, "--loglevel=INFO"],
            cwd=REPO_ROOT, env=_environment(broker_url, extra_env or {}), stdout=self.log_file, stderr=subprocess.STDOUT,
        )
        self.pid = self.process.pid

    def wait_ready(self, timeout_s: float = 90) -> CeleryProcess:
        deadline = time.monotonic() + timeout_s
        while self.ready_line not in self.log_path.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"celery {self.kind} {self.name} did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log_file.close()


def _environment(broker_url: str | None, extra_env: Mapping[str, str]) -> dict[str, str]:
    env = {**os.environ, **extra_env}
    env.update(DJANGO_SETTINGS_MODULE="phm.settings", DATABASE_URL=test_database_url(), PHM_DATA_ROOT=str(settings.DATA_ROOT))
    if broker_url:
        env["PHM_BROKER_URL"] = broker_url
    else:
        env.pop("PHM_BROKER_URL", None)
    return env


@contextmanager
def celery_worker(*, broker_url: str | None = None, queues: str = "ingest,cpu", log_path: Path, timeout_s: float = 90):
    """One worker on ``queues`` until the block ends; yields its ``subprocess.Popen``."""
    worker = CeleryProcess("worker", name=log_path.stem, broker_url=broker_url, log_dir=log_path.parent, queues=queues)
    try:
        yield worker.wait_ready(timeout_s).process
    finally:
        worker.stop()
