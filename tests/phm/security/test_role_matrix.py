"""Finding 3 of issue 19: roles fail closed. Every URL pattern of the project (walked from the root
resolver, admin included) and every method is requested as anonymous, a signed-in user in no role
group, an operator, an engineer and an admin, with data in the database so detail routes resolve,
and the outcome is compared with the matrix below, which is the README's "Pages and roles" table.

A route that is not in the matrix fails the test with its name: a new endpoint needs a rule here
(and in the README) before the suite passes. Each request runs in a savepoint that is rolled back,
so a permitted DELETE or POST changes nothing for the next one.
"""

from __future__ import annotations

import copy
import re
from datetime import timedelta

import numpy as np
import pytest
from django.core.signals import request_finished
from django.db import close_old_connections, transaction
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from tests.conftest import make_plant, user_in_role

USERS = ("anonymous", "nogroup", "operator", "engineer", "admin")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
#: Who passes a rule's role: roles rank operator < engineer < admin; no group and anonymous pass nothing.
PASSES = {
    "public": set(USERS),
    "operator": {"operator", "engineer", "admin"},
    "engineer": {"engineer", "admin"},
    "admin": {"admin"},
    "nobody": set(),
}
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def rule(read: str, write: str = "engineer", **per_method: str) -> dict[str, str]:
    """Role needed per method: ``read`` for GET, ``write`` for the rest, overrides by method."""
    return {"GET": read, **{m: write for m in WRITE_METHODS}, **per_method}


PAGE = rule  # pages: the same shape (a read role, a change role)

#: The README's "Pages and roles" matrix, route by route.
MATRIX: dict[str, dict[str, str]] = {
    # --- sign-in and static ----------------------------------------------------------------
    "login": rule("public", "public"),
    "logout": rule("public", "public"),
    "dashboard:plotly-js": rule("public", "public"),
    # --- operator pages ----------------------------------------------------------------------
    "dashboard:overview": PAGE("operator", "operator"),
    "dashboard:equipment": PAGE("operator", "operator"),
    "dashboard:console": PAGE("operator", "operator"),
    "dashboard:console-rows": PAGE("operator", "operator"),
    "dashboard:journal": PAGE("operator", "operator"),
    "dashboard:chat": PAGE("operator", "operator"),
    "dashboard:media": PAGE("operator", "operator"),
    "alarms:list": PAGE("operator", "operator"),
    "alarms:detail": PAGE("operator", "operator"),
    "alarms:action": PAGE("operator", "operator"),
    "analytics:diagnosis": PAGE("operator", "operator"),
    "analytics:passage": PAGE("operator", "operator"),
    "backtests:list": PAGE("operator", "operator"),
    "backtests:detail": PAGE("operator", "operator"),
    # --- engineer pages ----------------------------------------------------------------------
    "dashboard:models": PAGE("engineer", "engineer"),
    "dashboard:jobs-rows": PAGE("engineer", "engineer"),
    "dashboard:detector-action": PAGE("engineer", "engineer"),
    "dashboard:detector-create": PAGE("engineer", "engineer"),
    "dashboard:connectors": PAGE("engineer", "engineer"),
    "analytics:diagnosis-feedback": PAGE("engineer", "engineer"),
    "assistant:documents": PAGE("engineer", "engineer"),
    "assistant:delete-document": PAGE("engineer", "engineer"),
    "backtests:start": PAGE("engineer", "engineer"),
    "condition:capture-upload": PAGE("engineer", "engineer"),
    # --- API: read operator, write engineer, except the operator's own actions ---------------
    "api-schema": rule("operator"),
    "api-docs": rule("operator"),
    "api-root": rule("operator"),
    "readings-ingest": rule("operator"),
    "logs-ingest": rule("operator"),
    **{
        f"{basename}-{suffix}": rule("operator")
        for basename, suffixes in {
            "site": ("list", "detail"),
            "area": ("list", "detail"),
            "line": ("list", "detail"),
            "equipment": ("list", "detail"),
            "sensor": ("list", "detail", "readings"),
            "file-ingest-job": ("list", "detail"),
            "log-template": ("list", "detail"),
            "log-event": ("list", "detail"),
            "connector": ("list", "detail"),
            "detector": ("list", "detail", "activate", "rollback", "score", "scores", "train", "versions"),
            "training-job": ("list", "detail"),
            "diagnosis": ("list", "detail", "feedback"),
            "diagnoser": ("list", "detail", "train"),
            "diagnoser-job": ("list", "detail"),
            "alarm": ("list", "detail", "statistics"),
            "alarm-point": ("list", "detail", "in-service", "out-of-service", "suppress", "unsuppress"),
            "webhook": ("list", "detail", "test"),
            "assistant-document": ("list", "detail"),
            "assistant-conversation": ("list",),
            "assistant-document-job": ("list", "detail"),
            "backtest": ("list", "detail", "report", "alarms"),  # POST (start a replay): engineer
            "capture": ("list", "detail", "spectrum"),  # POST (a new capture): engineer
            "measurement-point": ("list", "detail"),
            "classifier": ("list", "detail", "train", "versions", "activate", "rollback"),  # POST (create + train): engineer
            "classifier-job": ("list", "detail"),
            "capture-classification": ("list", "detail"),
            "work-order": ("list", "detail"),
        }.items()
        for suffix in suffixes
    },
    # Setting capture labels and uploading labelled recordings change training data: engineer.
    "capture-labels": rule("operator"),
    "labelled-captures": rule("operator"),
    "alarm-ack": rule("operator", POST="operator"),
    "alarm-shelve": rule("operator", POST="operator"),
    "alarm-unshelve": rule("operator", POST="operator"),
    "assistant-conversation-detail": rule("operator", DELETE="operator"),
    "assistant-ask": rule("operator", "operator"),
    "assistant-ask-stream": rule("operator", "operator"),
    # Delivery records hold the first bytes of each receiver's answer.
    "webhook-deliveries": rule("engineer"),
    # An equipment's RUL is for everyone; the RUL models and their training are the engineer's.
    "equipment-rul": rule("operator"),
    **{f"rul-model-{suffix}": rule("engineer") for suffix in ("list", "detail")},
    # POST-only actions: a GET is answered 405 to whoever may read (as detector-train).
    **{f"rul-model-{suffix}": rule("operator") for suffix in ("train", "activate", "rollback")},
    **{f"rul-job-{suffix}": rule("engineer") for suffix in ("list", "detail")},
}
#: The admin site: staff accounts only (the admin user is a superuser), except its own sign-in.
ADMIN_PUBLIC = {"admin:login", "admin:logout"}
#: Django's admin answers 403 to every autocomplete request when no ModelAdmin configures
#: ``autocomplete_fields`` (none does), even for a superuser; others go to the admin login first.
ADMIN_NOBODY = {"admin:autocomplete"}
#: django-axes' admin (login lockouts) is a read-only record: nobody adds attempts by hand.
ADMIN_NO_ADD = {f"admin:axes_{model}_add" for model in ("accessattempt", "accesslog", "accessfailurelog")}


def walk(resolver: URLResolver, prefix: str = "", namespaces: tuple[str, ...] = ()):
    """(route text, view name or None, namespaces) for every URL pattern, recursively."""
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            yield from walk(pattern, prefix + str(pattern.pattern), namespaces + ((pattern.namespace,) if pattern.namespace else ()))
        elif isinstance(pattern, URLPattern):
            name = ":".join((*namespaces, pattern.name)) if pattern.name else None
            yield prefix + str(pattern.pattern), name, namespaces


def expected_rule(name: str | None, namespaces: tuple[str, ...]) -> dict[str, str] | None:
    if "admin" in namespaces:
        if name in ADMIN_PUBLIC:
            return rule("public", "public")
        if name in ADMIN_NO_ADD:
            return rule("nobody", "nobody")
        return rule("nobody", "admin") if name in ADMIN_NOBODY else rule("admin", "admin")
    return MATRIX.get(name) if name else None


@pytest.fixture
def data(db, tmp_path, settings):
    """One object of every kind a detail route needs."""
    from phm.alarms import services as alarm_services
    from phm.alarms.models import AlarmPoint, WebhookEndpoint
    from phm.assets.models import MeasurementPoint
    from phm.analytics.models import DetectorConfig, DiagnoserTrainingJob, DiagnoserVersion, Diagnosis, TrainingJob
    from phm.assistant.models import Chunk, Conversation, Document, DocumentJob
    from phm.assets.models import WorkOrder
    from phm.backtests.models import BacktestRun
    from phm.condition.models import (CaptureClassification, CaptureClassifier, ClassifierTrainingJob, ClassifierVersion, RULModelVersion,
                                      RULTrainingJob, WaveformCapture)
    from phm.sources.models import ConnectorDefinition
    from phm.telemetry.models import FileIngestJob, LogEvent, LogTemplate

    settings.MEDIA_ROOT = tmp_path / "media"
    (tmp_path / "media" / "images").mkdir(parents=True)
    (tmp_path / "media" / "images" / "pump.jpg").write_bytes(b"jpeg")
    pump, sensors = make_plant()
    now = timezone.now()
    alarm_services.evaluate_scores(
        equipment=pump, source="detector:test", samples=[alarm_services.Sample(now - timedelta(seconds=5), 2.0)], policy=alarm_services.AlarmPolicy(threshold=1.0)
    )
    from phm.alarms.models import Alarm

    alarm = Alarm.objects.get()
    detector = DetectorConfig.objects.create(equipment=pump, name="pca", method="pca")
    detector.sensors.set(sensors.values())
    document = Document.objects.create(name="manual.md", file_type="markdown", sha256="0" * 64, size_bytes=10, chunk_count=1)
    engineer = user_in_role("data-owner", "engineer")
    version = DiagnoserVersion.objects.create(version=1, artifact="diagnosers/v1")
    point = MeasurementPoint.objects.create(equipment=pump, name="DE", pitch_diameter_mm=72.5, ball_diameter_mm=17.462, rolling_elements=8)
    capture = WaveformCapture.objects.create(equipment=pump, point=point, captured_at=now, sample_rate_hz=25600.0, n_samples=4096,
                                             samples=WaveformCapture.pack(np.sin(np.arange(4096) / 5.0)), velocity_rms_mm_s=1.0)
    classifier = CaptureClassifier.objects.create(name="bearings")
    classifier.equipment.set([pump])
    classifier_version = ClassifierVersion.objects.create(classifier=classifier, version=1, artifact="classifiers/1/v1",
                                                          classes=["IR_007", "Normal"], train_captures=2, is_active=True)
    objects = {
        "classifier": classifier.pk,
        "classifier-job": ClassifierTrainingJob.objects.create(classifier=classifier).pk,
        "capture-classification": CaptureClassification.objects.create(
            capture=capture, classifier=classifier, version=classifier_version, label="IR_007", probability=0.9,
            probabilities={"IR_007": 0.9, "Normal": 0.1}, fault_probability=0.9).pk,
        "site": pump.line.area.site.pk,
        "area": pump.line.area.pk,
        "line": pump.line.pk,
        "equipment": pump.tag,
        "sensor": sensors["vibration"].tag,
        "file-ingest-job": FileIngestJob.objects.create(file="uploads/2026/03/a.csv", original_name="a.csv").pk,
        "connector": ConnectorDefinition.objects.create(name="plc", kind="modbus", config={"host": "10.0.0.5", "registers": [{"tag": "P-101.PRESS", "address": 0}]}).name,
        "detector": detector.pk,
        "training-job": TrainingJob.objects.create(config=detector, train_start=now - timedelta(hours=1), train_end=now).pk,
        "diagnosis": Diagnosis.objects.create(alarm=alarm, equipment=pump, claimed_at=now, model_version=version).pk,
        "diagnoser": version.pk,
        "diagnoser-job": DiagnoserTrainingJob.objects.create(kind="retrain").pk,
        "alarm": alarm.pk,
        "alarm-point": AlarmPoint.objects.get().pk,
        "webhook": WebhookEndpoint.objects.create(url="https://93.184.216.34/hook").pk,
        "assistant-document": document.pk,
        "assistant-conversation": Conversation.objects.create(user=engineer, title="seal").pk,
        "assistant-document-job": DocumentJob.objects.create(file="kb_uploads/2026/03/m.md", name="m.md").pk,
        "capture": capture.pk,
        "measurement-point": point.pk,
        "backtest": BacktestRun.objects.create(start=now - timedelta(hours=2), end=now - timedelta(hours=1), status="succeeded", report={"detection": {}}).pk,
        "log-template": LogTemplate.objects.create(template_id="plc:1", template="pump <*> started").template_id,
        "log-event": LogEvent.objects.create(source="P-101", equipment=pump, ts=now, level="INFO", message="pump P1 started", template_id="plc:1", fingerprint="f" * 40).pk,
        "work-order": WorkOrder.objects.create(equipment=pump, number="WO-1", opened_at=now, failed_at=now, ends_run=True).pk,
        "rul-model": RULModelVersion.objects.create(equipment_type="pump", version=1, method="lightgbm", measurements=["vibration_rms"],
                                                    step_s=86400, histories=5, artifact="rul/pump/v1").pk,
        "rul-job": RULTrainingJob.objects.create(equipment_type="pump").pk,
        "passage": Chunk.objects.create(document=document, ordinal=0, text="check the seal", location="section 1", embedding=b"\0" * 16, batch="b").pk,
    }
    return objects


def fill(route: str, name: str | None, objects: dict) -> str:
    """A concrete path for ``route`` whose parameters name objects that exist."""
    base = (name or "").split(":")[-1]
    for suffix in ("-list", "-detail", "-feedback", "-train"):
        base = base.removesuffix(suffix)
    owner = next((key for key in sorted(objects, key=len, reverse=True) if base.startswith(key)), None)
    values = {
        "pk": objects.get(owner, 1) if owner else 1,
        "tag": objects["sensor"] if base.startswith("sensor") else objects["equipment"],
        "name": objects["connector"],
        "template_id": objects["log-template"],
        "alarm_id": objects["alarm"],
        "action": "activate" if base.startswith("detector-action") else "ack",
        "path": "images/pump.jpg",
        "object_id": 1,
        "content_type_id": 1,
        "app_label": "assets",
        "url": "no-such-page/",
    }
    if name == "analytics:passage":
        values["pk"] = objects["passage"]
    elif name in ("analytics:diagnosis", "analytics:diagnosis-feedback"):
        values["pk"] = objects["diagnosis"]
    elif name == "assistant:delete-document":
        values["pk"] = objects["assistant-document"]
    elif name == "backtests:detail":
        values["pk"] = objects["backtest"]
    elif name == "dashboard:detector-action":
        values["pk"] = objects["detector"]
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: str(values.get(m.group(1), 1)), route)
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values.get(m.group(1), 1)), path)
    return "/" + path.replace("^", "").replace("$", "").replace("/?", "/")


def denied(response) -> bool:
    """Refused by a role check: 401/403, or sent to a sign-in page to come back (``?next=``)."""
    if response.status_code in (401, 403):
        return True
    location = response.get("Location", "") if response.status_code in (301, 302) else ""
    return location.startswith(("/accounts/login/", "/admin/login/")) and "next=" in location


@pytest.fixture
def clients(data):
    users = {
        "nogroup": user_in_role("m-nogroup", None),
        "operator": user_in_role("m-operator", "operator"),
        "engineer": user_in_role("m-engineer", "engineer"),
        "admin": user_in_role("m-admin", "superuser"),
    }
    out = {"anonymous": APIClient(raise_request_exception=False)}
    for label, user in users.items():
        client = APIClient(raise_request_exception=False)
        client.force_login(user)  # a session: the pages and the API (SessionAuthentication) alike
        out[label] = client
    return out


def request(client, method: str, path: str):
    cookies = copy.deepcopy(client.cookies)  # a permitted logout must not sign the next request out
    with transaction.atomic():
        response = getattr(client, method.lower())(path)
        if response.streaming:
            # Never run a streamed answer (only the permission is under test); close it the way
            # the test client closes other responses, without closing the test's connection.
            request_finished.disconnect(close_old_connections)
            try:
                response.close()
            finally:
                request_finished.connect(close_old_connections)
        transaction.set_rollback(True)
    client.cookies = cookies
    return response


@pytest.mark.django_db
def test_every_route_and_method_follows_the_role_matrix(clients, data):
    routes = list(walk(get_resolver()))
    unknown = sorted({route if name is None else name for route, name, namespaces in routes if expected_rule(name, namespaces) is None})
    assert not unknown, f"routes without a rule in the role matrix (add them to README 'Pages and roles' and this test): {unknown}"
    seen, mismatches = set(), []
    for route, name, namespaces in routes:
        path = fill(route, name, data)
        if path in seen:
            continue  # the same path from two routers (api-root)
        seen.add(path)
        expected = expected_rule(name, namespaces)
        for method in METHODS:
            for user in USERS:
                response = request(clients[user], method, path)
                allowed = not denied(response)
                if allowed != (user in PASSES[expected[method]]):
                    error = getattr(response, "exc_info", None)  # the server error, if any: say which
                    detail = f" ({error[0].__name__}: {error[1]})" if response.status_code >= 500 and error else ""
                    mismatches.append(f"{method} {path} ({name}) as {user}: {response.status_code}{detail}, expected {'allowed' if not allowed else 'refused'}")
    assert not mismatches, f"{len(mismatches)} outcome(s) differ from the role matrix:\n" + "\n".join(mismatches[:60])


@pytest.mark.django_db
def test_a_user_in_no_group_is_told_why(clients):
    page = clients["nogroup"].get("/")
    api = clients["nogroup"].post("/api/v1/sites/", {"code": "x", "name": "x"}, format="json")
    assert page.status_code == 403 and b"no role group" in page.content
    assert api.status_code == 403 and "no role group" in api.json()["error"]


@pytest.mark.django_db
def test_raw_historian_uploads_are_for_engineers_only(clients, settings):
    uploads = settings.MEDIA_ROOT / "uploads" / "2026" / "03"
    uploads.mkdir(parents=True)
    (uploads / "export.csv").write_text("ts,P-101.VIB\n")
    assert clients["operator"].get("/media/uploads/2026/03/export.csv").status_code == 403
    assert clients["engineer"].get("/media/uploads/2026/03/export.csv").status_code == 200
    assert clients["operator"].get("/media/images/pump.jpg").status_code == 200
