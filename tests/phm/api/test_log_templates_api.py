"""Merged (alias) and split template ids read the same everywhere: the log template and log event
endpoints and the admin show an alias as pointing at the template it merged into, and ids kept in
stored documents resolve to the surviving template."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from tests.phm.sources.test_logfile_unseen_format import run_connector


def pump_log(tmp_path, settings):
    """'startup' -> :1, 'shutdown' -> :2, then a third word merges :2 into :1 (the miner's rule)."""
    settings.PHM_CONNECTOR_ROOTS = [str(tmp_path)]
    now = timezone.now().replace(microsecond=0)
    words = ["startup", "shutdown", "startup", "restart", "shutdown"]
    path = tmp_path / "pumpd.log"
    path.write_text("".join(f"{(now - timedelta(minutes=9 - i)).isoformat()} INFO service pump {w} succeeded\n" for i, w in enumerate(words)))
    run_connector(path, name="pumpd")


def test_the_log_template_endpoint_shows_an_alias_pointing_at_its_surviving_template(api_client, plant, tmp_path, settings):
    pump_log(tmp_path, settings)
    listing = api_client.get("/api/v1/log-templates/").json()
    rows = {row["template_id"]: row for row in listing["results"]}
    assert rows["pumpd:2"]["merged_into"] == "pumpd:1"
    assert rows["pumpd:2"]["current_template"] == "service pump <*> succeeded"
    assert rows["pumpd:1"]["merged_into"] is None and rows["pumpd:1"]["current_template"] == "service pump <*> succeeded"
    detail = api_client.get("/api/v1/log-templates/pumpd:2/").json()
    assert detail["merged_into"] == "pumpd:1" and detail["template"] == "service pump shutdown succeeded"
    live = api_client.get("/api/v1/log-templates/?live=true").json()["results"]
    assert [row["template_id"] for row in live] == ["pumpd:1"]


def test_the_log_event_endpoint_resolves_aliases_and_filters_by_the_surviving_template(api_client, plant, tmp_path, settings):
    pump_log(tmp_path, settings)
    events = api_client.get("/api/v1/log-events/?template_id=pumpd:1").json()["results"]
    assert len(events) == 5  # the lines of :2 count with :1, which they merged into
    stored = sorted(e["template_id"] for e in events)
    assert stored == ["pumpd:1", "pumpd:1", "pumpd:1", "pumpd:1", "pumpd:2"]  # what was stored never changes
    assert {e["current_template_id"] for e in events} == {"pumpd:1"}
    assert {e["template"] for e in events} == {"service pump <*> succeeded"}
    assert [e["merged_into"] for e in events if e["template_id"] == "pumpd:2"] == ["pumpd:1"]
    assert api_client.get("/api/v1/log-events/?template_id=pumpd:2").json()["count"] == 1  # an alias alone: its own lines
    assert api_client.get("/api/v1/log-events/?equipment=P-101&level=INFO").json()["count"] == 5
    bad = api_client.get("/api/v1/log-events/?start=yesterday")
    assert bad.status_code == 400 and "start" in bad.json()["detail"]


def test_the_admin_lists_an_alias_with_the_template_it_merged_into(client, plant, tmp_path, settings, django_user_model):
    pump_log(tmp_path, settings)
    admin = django_user_model.objects.create_superuser("root", password="pw-root-123456")
    client.force_login(admin)
    page = client.get("/admin/telemetry/logtemplate/").content.decode()
    assert '<td class="field-merged_into">pumpd:1</td>' in page  # the alias's row points at its survivor
    assert page.count('<td class="field-merged_into">-</td>') == 1  # the survivor is live
    filtered = client.get("/admin/telemetry/logtemplate/?merged_into__exact=pumpd:1").content.decode()
    assert "pumpd:2" in filtered


def test_ids_in_stored_documents_resolve_to_the_surviving_template(plant, tmp_path, settings):
    from phm.telemetry.log_templates import current_ids, ids_meaning, record_lineage
    from phm.telemetry.models import LogTemplate

    pump_log(tmp_path, settings)
    assert current_ids(["pumpd:2", "pumpd:1", "other:9"]) == {"pumpd:2": "pumpd:1", "pumpd:1": "pumpd:1", "other:9": "other:9"}
    assert sorted(ids_meaning("pumpd:1")) == ["pumpd:1", "pumpd:2"]
    # A row written after the checkpoint (a spooled batch replayed later) gets its lineage at the next one.
    LogTemplate.objects.create(template_id="pumpd:7", template="late")
    assert record_lineage(aliases={"pumpd:2": "pumpd:1", "pumpd:7": "pumpd:1"}, splits={}) == 1
    assert LogTemplate.objects.get(template_id="pumpd:7").merged_into == "pumpd:1"
    assert record_lineage(aliases={"pumpd:2": "pumpd:1", "pumpd:7": "pumpd:1"}, splits={}) == 0  # nothing stale: no update


def test_the_log_event_admin_shows_where_a_stored_id_merged(client, plant, tmp_path, settings, django_user_model):
    pump_log(tmp_path, settings)
    admin = django_user_model.objects.create_superuser("root", password="pw-root-123456")
    client.force_login(admin)
    page = client.get("/admin/telemetry/logevent/").content.decode()
    assert '<td class="field-merged_into">pumpd:1</td>' in page, page[page.find("result_list"):][:2000]


def test_a_split_reaches_the_template_rows_through_the_connectors_state_store(api_client, db):
    from connectors.logtemplates import MinerSettings, TemplateMiner
    from phm.sources.services import DatabaseMinerStateStore
    from phm.telemetry.models import LogTemplate

    miner = TemplateMiner(MinerSettings(split_min_lines=60, split_min_count=20))
    seen = {miner.add(line).template_id for line in ["valve V1 opened closed", "valve V1 stuck closed", "valve V1 jammed closed"]}
    for i in range(80):
        seen |= {miner.add(f"valve V{i % 3} {w} closed").template_id for w in ("opened", "stuck")}
    assert miner.splits() == {"3": "1", "4": "1"}
    LogTemplate.objects.bulk_create([LogTemplate(template_id=f"v:{tid}", template=miner.template(tid)) for tid in seen])
    state = miner.state() | {"aliases": {f"v:{a}": f"v:{b}" for a, b in miner.aliases().items()}, "splits": {f"v:{a}": f"v:{b}" for a, b in miner.splits().items()}}
    DatabaseMinerStateStore().set("logfile:v", state)
    rows = {row["template_id"]: row for row in api_client.get("/api/v1/log-templates/").json()["results"]}
    assert rows["v:3"]["split_from"] == "v:1" and rows["v:3"]["merged_into"] is None
    assert rows["v:3"]["template"] == "valve <*> opened closed" and rows["v:1"]["template"] == "valve <*> <*> closed"


def test_bad_log_event_queries_are_refused_with_the_field_named(api_client, db):
    too_long = api_client.get("/api/v1/log-events/?template_id=" + "x" * 65)
    assert too_long.status_code == 400 and "template_id" in too_long.json()["detail"]
    backwards = api_client.get("/api/v1/log-events/?start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z")
    assert backwards.status_code == 400 and "end" in backwards.json()["detail"]
    assert api_client.get("/api/v1/log-templates/no:such/").status_code == 404
    assert api_client.post("/api/v1/log-templates/", {"template_id": "x:1", "template": "t"}, format="json").status_code == 405



def test_a_stored_diagnosis_names_connector_template_ids_and_an_alias_resolves_to_its_survivor(api_client, plant, tmp_path, settings):
    from phm.alarms import services as alarm_services
    from phm.alarms.models import Alarm
    from phm.analytics.diagnosis import log_events_with_ids
    from phm.analytics.models import Diagnosis

    pump, _ = plant
    pump_log(tmp_path, settings)
    now = timezone.now()
    events, ids = log_events_with_ids(equipment=pump, start=now - timedelta(hours=1), end=now + timedelta(seconds=1))
    assert len(events) == 5 and {e.template for e in events} == {"service pump <*> succeeded"}
    # Mined again for the diagnosis window, the lines keep the ids their connector gave them.
    assert ids == {"service pump <*> succeeded": ["pumpd:1", "pumpd:2"]}
    alarm_services.evaluate_scores(
        equipment=pump, source="detector:test", samples=[alarm_services.Sample(now - timedelta(seconds=5), 2.0)], policy=alarm_services.AlarmPolicy(threshold=1.0)
    )
    diagnosis = Diagnosis.objects.create(
        alarm=Alarm.objects.get(), equipment=pump, claimed_at=now, status="done",
        result={"fault": "seal_leak", "log_template_ids": {"service pump shutdown succeeded": ["pumpd:2"]}},
    )
    body = api_client.get(f"/api/v1/diagnoses/{diagnosis.pk}/").json()
    assert body["log_template_ids"] == [
        {"template": "service pump shutdown succeeded", "template_ids": ["pumpd:2"], "current_template_ids": ["pumpd:1"]}
    ]
