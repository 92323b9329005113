"""The issue #20 check: a log of a format no other test uses (a Windows Event Viewer export,
tab-separated, level first, US date with AM/PM, one event whose message spans lines) goes
through a ``logfile`` connector as the supervisor builds it, and its templates show on the
equipment page. Nothing is configured but the path and the equipment tag."""

from __future__ import annotations

import re
from datetime import timedelta

from django.utils import timezone

from phm.sources.registry import build_connector
from phm.sources.services import DatabaseMinerStateStore, DatabaseOffsetStore
from phm.telemetry.sink import DatabaseSink


def event_viewer_export(now) -> str:
    """What "Save All Events As... Text (Tab delimited)" writes for a pump controller service."""
    rows = []
    for minute in range(12):
        ts = now - timedelta(minutes=30 - minute)
        stamp = f"{ts.month}/{ts.day}/{ts.year} {ts:%I:%M:%S %p}"
        rows.append(f"Information\t{stamp}\tPumpControl\t1000\tNone\tScan cycle completed in {40 + minute} ms")
        if minute % 3 == 0:
            rows.append(f"Warning\t{stamp}\tPumpControl\t1001\tNone\tVibration {6 + minute / 10:.1f} mm/s above warning limit 4.5 mm/s")
    stamp = f"{now.month}/{now.day}/{now.year} {now - timedelta(minutes=5):%I:%M:%S %p}"
    rows.append(f'Error\t{stamp}\tPumpControl\t1002\tNone\t"Drive D1 tripped: overcurrent 41.2 A')
    rows.append("Fault code F0002, reset required")
    rows.append('Operator acknowledged at the panel"')
    return "\n".join(rows) + "\n"


def run_connector(path, name="wevt-p101"):
    connector = build_connector(
        name=name,
        kind="logfile",
        config={"path": str(path), "source": "P-101"},
        sink=DatabaseSink(channel=f"logfile:{name}"),
        offsets=DatabaseOffsetStore(),
        miner_states=DatabaseMinerStateStore(),
    )
    connector.read_available()
    return connector


def test_an_unseen_windows_event_export_shows_its_templates_on_the_equipment_page(client, plant, api_user, tmp_path, settings):
    settings.PHM_CONNECTOR_ROOTS = [str(tmp_path)]  # the plant's log folder, allowed explicitly
    from phm.telemetry.models import LogEvent, LogTemplate

    now = timezone.now().replace(microsecond=0)
    path = tmp_path / "PumpControl.txt"
    path.write_text(event_viewer_export(now))
    connector = run_connector(path)
    assert connector.status().rejected == 0
    events = LogEvent.objects.filter(source="P-101").order_by("ts", "id")
    assert events.count() == 12 + 4 + 1  # the three-line error is one event
    error = events.get(level="ERROR")
    assert error.message.endswith("F0002, reset required\nOperator acknowledged at the panel\"")
    assert {e.level for e in events} == {"INFO", "WARNING", "ERROR"}
    texts = dict(LogTemplate.objects.values_list("template_id", "template"))
    assert texts == {
        "wevt-p101:1": "PumpControl <NUM> None Scan cycle completed in <NUM> ms",
        "wevt-p101:2": "PumpControl <NUM> None Vibration <NUM> mm/s above warning limit <NUM> mm/s",
        "wevt-p101:3": 'PumpControl <NUM> None "Drive D1 tripped: overcurrent <NUM> A',
    }

    client.force_login(api_user)
    page = client.get("/equipment/P-101/?range=1h").content.decode()
    table = page[page.index('data-testid="log-templates"') :]
    rows = re.findall(r"<tr><td>(\d+)</td><td>([^<]+)</td>\s*<td><code>([^<]+)</code>", table)
    assert rows == [
        ("12", "INFO 12", "PumpControl &lt;NUM&gt; None Scan cycle completed in &lt;NUM&gt; ms"),
        ("4", "WARNING 4", "PumpControl &lt;NUM&gt; None Vibration &lt;NUM&gt; mm/s above warning limit &lt;NUM&gt; mm/s"),
        ("1", "ERROR 1", "PumpControl &lt;NUM&gt; None &quot;Drive D1 tripped: overcurrent &lt;NUM&gt; A"),
    ], table[:1500]


def test_after_a_restart_the_connector_continues_with_the_same_template_ids(plant, tmp_path, settings):
    settings.PHM_CONNECTOR_ROOTS = [str(tmp_path)]
    from phm.telemetry.models import LogEvent

    now = timezone.now().replace(microsecond=0)
    path = tmp_path / "PumpControl.txt"
    path.write_text(event_viewer_export(now - timedelta(hours=1)))
    run_connector(path)
    with path.open("a") as handle:
        handle.write(event_viewer_export(now))
    run_connector(path)  # a new connector object: miner state and offset come from the database
    scan = LogEvent.objects.filter(message__startswith="PumpControl\t1000")
    assert scan.count() == 24 and set(scan.values_list("template_id", flat=True)) == {"wevt-p101:1"}
    assert set(LogEvent.objects.filter(level="ERROR").values_list("template_id", flat=True)) == {"wevt-p101:3"}


def test_templates_merged_by_the_miner_count_as_one_on_the_equipment_page(client, plant, api_user, tmp_path, settings):
    from phm.telemetry.models import LogEvent, LogTemplate

    now = timezone.now().replace(microsecond=0)
    settings.PHM_CONNECTOR_ROOTS = [str(tmp_path)]  # the plant's log folder, allowed explicitly
    path = tmp_path / "pumpd.log"
    words = ["startup", "shutdown", "startup", "restart", "shutdown"]
    path.write_text("".join(f"{(now - timedelta(minutes=9 - i)).isoformat()} INFO service pump {w} succeeded\n" for i, w in enumerate(words)))
    run_connector(path, name="pumpd")
    # Stored as mined: "startup" -> :1, "shutdown" -> :2; the third word merged :2 into :1.
    assert list(LogEvent.objects.order_by("ts").values_list("template_id", flat=True)) == ["pumpd:1", "pumpd:2", "pumpd:1", "pumpd:1", "pumpd:1"]
    client.force_login(api_user)
    page = client.get("/equipment/P-101/?range=1h").content.decode()
    table = page[page.index('data-testid="log-templates"') :]
    rows = re.findall(r"<tr><td>(\d+)</td><td>([^<]+)</td>\s*<td><code>([^<]+)</code>", table)
    assert rows == [("5", "INFO 5", "service pump &lt;*&gt; succeeded")], table[:1200]
    # The page reads the alias from the template row, set from the miner state at the checkpoint.
    assert LogTemplate.objects.get(template_id="pumpd:2").merged_into == "pumpd:1"


def test_the_supervisor_builds_log_connectors_that_keep_their_miner_state_in_the_database(plant, tmp_path, settings):
    from phm.sources.models import ConnectorDefinition, LogMinerState
    from phm.sources.services import build_supervisor

    settings.DATA_ROOT = str(tmp_path)
    settings.PHM_CONNECTOR_ROOTS = [str(tmp_path)]
    path = tmp_path / "PumpControl.txt"
    path.write_text(event_viewer_export(timezone.now().replace(microsecond=0)))
    definition = ConnectorDefinition.objects.create(name="wevt", kind="logfile", config={"path": str(path), "source": "P-101"})
    supervisor, _ = build_supervisor([definition])
    (connector,) = supervisor.connectors
    connector.read_available()
    state = LogMinerState.objects.get(key="logfile:wevt").state
    assert len(state["templates"]) == 3 and state["aliases"] == {}
