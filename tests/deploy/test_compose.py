"""docker-compose.yml cannot run here (no Docker engine), so check it by reading it."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from phm.celery import QUEUE_NAMES

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_runs_the_whole_stack(compose):
    assert {"postgres", "redis", "web", "worker-ingest", "worker-cpu", "worker-gpu", "beat", "migrate"} <= set(compose["services"])


def test_app_services_point_at_postgres_and_redis(compose):
    for name in ("web", "worker-ingest", "worker-cpu", "beat"):
        env = compose["services"][name]["environment"]
        assert env["DATABASE_URL"].startswith("postgresql://") and "@postgres:" in env["DATABASE_URL"]
        assert env["PHM_BROKER_URL"].startswith("redis://redis:")


def test_every_queue_has_a_worker(compose):
    consumed = set()
    for service in compose["services"].values():
        command = service.get("command") or []
        command = shlex.split(command) if isinstance(command, str) else command
        if "worker" in command:
            consumed.update(command[command.index("-Q") + 1].split(","))
    assert consumed == set(QUEUE_NAMES)


def test_app_waits_for_healthy_dependencies_and_migrations(compose):
    web = compose["services"]["web"]
    assert web["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    migrate = compose["services"]["migrate"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in compose["services"]["postgres"] and "healthcheck" in compose["services"]["redis"]


def test_dockerfile_copies_every_package(compose):
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("phm", "models", "connectors", "templates"):
        assert f"COPY {package} ./{package}" in dockerfile


def test_clickhouse_service_and_readings_store_settings(compose):
    clickhouse = compose["services"]["clickhouse"]
    major, minor = (int(part) for part in clickhouse["image"].rsplit(":", 1)[1].split(".")[:2])
    assert clickhouse["image"].startswith("clickhouse/clickhouse-server:") and (major, minor) >= (25, 1)
    assert "healthcheck" in clickhouse and "clickhouse-data" in compose["volumes"]
    env = compose["services"]["web"]["environment"]
    assert env["PHM_READINGS_STORE"].startswith("${PHM_READINGS_STORE:-sql}")
    assert "@clickhouse:8123/" in env["PHM_CLICKHOUSE_URL"]
    for name in ("PHM_RETENTION_RAW_DAYS", "PHM_RETENTION_ROLLUP_DAYS", "PHM_PARTITION_AHEAD_DAYS"):
        assert name in env
