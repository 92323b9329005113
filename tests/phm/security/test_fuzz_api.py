"""Property-based fuzzing of the whole REST API from its own OpenAPI schema (issue 19).

Schemathesis generates requests for every operation of ``/api/schema/`` (path, query and body
values that fit the schema) and sends them through the WSGI application as an admin, so every
write path runs too. Each response must not be a 5xx, and a documented response must match the
schema (body and content type). Bounded: ``PHM_FUZZ_EXAMPLES`` examples per operation (default
6) with a fixed seed (``derandomize``), so the run is the same every time and stays well under
two minutes; outbound calls are disabled (no Celery task is sent, no HTTP leaves the process).
The summary (operations, cases, server errors) is printed and written to ``$PHM_FUZZ_REPORT``
when set.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from datetime import timedelta

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

EXAMPLES = int(os.environ.get("PHM_FUZZ_EXAMPLES", 6))
NOTE = b"---\nequipment: P-101\n---\n# P-101 pump\n\n## Bearings\nDrive-end bearing 6309-2Z/C3, oil ISO VG 68 every 4000 hours.\n"


def existing_row(path: str, name: str) -> object:
    """A path parameter naming a row that ``fuzz_data`` created (random ones are mostly 404s)."""
    if name == "tag":
        return "P-101.VIB" if "/sensors/" in path else "P-101"
    return 1 if name == "id" else "fuzz"


@pytest.fixture
def no_outbound(monkeypatch):
    """Nothing leaves the process: Celery tasks are recorded, not sent; HTTP clients refuse."""
    import requests
    from celery.app.task import Task

    sent: list[str] = []
    monkeypatch.setattr(Task, "apply_async", lambda self, *a, **k: sent.append(self.name))

    def refuse(*args, **kwargs):
        raise requests.ConnectionError("outbound HTTP is disabled while fuzzing")

    monkeypatch.setattr(requests.Session, "send", refuse)
    return sent


@pytest.fixture
def wsgi_app():
    """The WSGI application, with the test database connection kept open across requests (the
    request signals would close it; Django's own test client disconnects them the same way)."""
    from django.core.signals import request_finished, request_started
    from django.core.wsgi import get_wsgi_application
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_data(plant, t0):
    """Some of everything, so detail routes find rows (ids are small integers, often 1)."""
    from django.contrib.auth.models import User
    from django.utils import timezone

    from phm.alarms import services as alarm_services
    from phm.alarms.models import WebhookEndpoint, new_webhook_secret
    from phm.alarms.services import AlarmPolicy, Sample
    from phm.analytics.models import AnomalyScore, DetectorConfig
    from phm.assistant import services as kb

    pump, sensors = plant
    detector = DetectorConfig.objects.create(equipment=pump, name="pca-main", method="pca", scored_until=t0)
    detector.sensors.set(sensors.values())
    AnomalyScore.objects.bulk_create(AnomalyScore(config=detector, ts=t0 + timedelta(seconds=i), score=0.5, threshold=1.0) for i in range(3))
    alarm_services.evaluate_scores(equipment=pump, source="detector:pca-main", samples=[Sample(timezone.now(), 3.0)], policy=AlarmPolicy(threshold=1.0))
    WebhookEndpoint.objects.create(url="https://scada.example/hook", secret=new_webhook_secret(), description="SCADA")
    kb.ingest_document(name="p101.md", content=NOTE)
    return User.objects.create_superuser("fuzz-admin", password="pw-fuzz-admin-1")


def test_every_operation_survives_generated_requests(wsgi_app, fuzz_data, no_outbound, tiny_model, capsys):
    from rest_framework.authtoken.models import Token
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

    schema = schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app)
    headers = {"Authorization": f"Token {Token.objects.create(user=fuzz_data).key}"}
    checks = [not_a_server_error, response_schema_conformance, content_type_conformance]
    statuses: Counter[int] = Counter()
    per_operation: dict[str, int] = {}
    failures: list[str] = []
    started = time.monotonic()

    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        per_operation[label] = 0

        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(), aim_at_existing=st.booleans())
        def run(case, aim_at_existing: bool) -> None:
            # Half the cases address rows that exist, so detail and action views run past the
            # lookup; never for DELETE, which would cascade the plant away for later operations.
            if aim_at_existing and case.path_parameters and case.method.upper() != "DELETE":
                case.path_parameters = {name: existing_row(case.path, name) for name in case.path_parameters}
            response = case.call(headers=headers)
            per_operation[label] += 1
            statuses[response.status_code] += 1
            try:
                case.validate_response(response, checks=checks, headers=headers)
            except (Exception, BaseExceptionGroup) as exc:  # a schemathesis FailureGroup; keep going, report all
                lines = [line.strip() for line in str(exc).splitlines() if line.strip()][1:6]
                failures.append(f"{label} -> {response.status_code}: {' | '.join(lines)[:400]}")
                raise

        try:
            run()
        except (Exception, BaseExceptionGroup):  # recorded in failures (hypothesis re-raises the shrunk example)
            pass

    summary = {
        "operations": len(per_operation), "cases": sum(per_operation.values()), "examples_per_operation": EXAMPLES,
        "server_errors": sum(n for code, n in statuses.items() if code >= 500), "statuses": dict(sorted(statuses.items())),
        "failures": sorted(set(failures)), "seconds": round(time.monotonic() - started, 1), "celery_tasks_not_sent": len(no_outbound),
    }
    with capsys.disabled():
        print("\nAPI fuzzing:", json.dumps(summary, indent=1))
    if path := os.environ.get("PHM_FUZZ_REPORT"):
        with open(path, "w") as out:
            json.dump(summary, out, indent=1)
    assert summary["operations"] >= 50 and summary["cases"] >= summary["operations"]
    assert not summary["failures"], "\n".join(summary["failures"])
