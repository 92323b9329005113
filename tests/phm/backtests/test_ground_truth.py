"""Backtests scored against corrective work orders (the plant's maintenance history), the recorded
fault injections, or both: through the service, the API, the command and the page form; the report
says which truth it used and lists the work orders it could not use, with the reason."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from phm.assets.models import Equipment, WorkOrder, WorkOrderKind
from phm.backtests import services
from phm.backtests.models import BacktestAlarm, BacktestRun
from phm.backtests.truth import known_faults, work_order_period
from tests.phm.backtests.helpers import FAULT_START, HISTORY_END, HISTORY_START, TRAIN_END, pump_history  # noqa: F401 (fixture)
from tests.phm.backtests.test_api_and_pages import api_client_for, page_client_for

FOUND = FAULT_START + timedelta(minutes=45)  # the work order opened 45 min into the cavitation


@pytest.fixture
def work_orders(pump_history):
    """P-201's maintenance history over the backtest range: the cavitation found by a work order; a
    bearing fault that failed the pump 10 min after it began, which no alarm caught (a made-up
    record: the history has no such fault, so the detector cannot see it); a corrective work order
    without a fault start; a preventive one."""
    pump = Equipment.objects.get(tag="P-201")
    found = WorkOrder.objects.create(equipment=pump, number="WO-1001", opened_at=FOUND, fault="cavitation", fault_start=FAULT_START,
                                     description="Cavitation noise, suction strainer half blocked.")
    failed = WorkOrder.objects.create(equipment=pump, number="WO-1002", opened_at=TRAIN_END + timedelta(minutes=15), fault="bearing_wear",
                                      fault_start=TRAIN_END + timedelta(minutes=2), failed_at=TRAIN_END + timedelta(minutes=12))
    WorkOrder.objects.create(equipment=pump, number="WO-1003", opened_at=FAULT_START + timedelta(minutes=30), fault="misalignment")
    WorkOrder.objects.create(equipment=pump, number="WO-1004", kind=WorkOrderKind.PREVENTIVE, opened_at=FOUND, fault_start=FAULT_START)
    WorkOrder.objects.create(equipment=pump, number="WO-0999", opened_at=HISTORY_START, fault="cavitation",
                             fault_start=HISTORY_START - timedelta(days=2))  # over before the range
    return {"found": found, "failed": failed, "fault": pump_history}


def run_with(ground_truth: str) -> BacktestRun:
    run = services.create_backtest(start=TRAIN_END, end=HISTORY_END, diagnose=False, ground_truth=ground_truth, enqueue=False)
    run = services.run_backtest(run_id=run.pk)
    assert run.status == "succeeded", run.error
    return run


def test_a_work_orders_fault_period_runs_from_fault_start_to_the_failure_or_the_opening(work_orders):
    assert work_order_period(work_orders["found"]) == (FAULT_START, FOUND)
    assert work_order_period(work_orders["failed"]) == (TRAIN_END + timedelta(minutes=2), TRAIN_END + timedelta(minutes=12))
    backwards = WorkOrder(equipment=work_orders["found"].equipment, number="X", opened_at=FAULT_START, fault="cavitation", fault_start=FOUND)
    assert "opened_at" in work_order_period(backwards) and "not after fault_start" in work_order_period(backwards)


def test_scored_against_work_orders(work_orders):
    run = run_with("work_orders")
    report = run.report
    assert report["ground_truth"] == "work_orders"
    rows = {row["reference"]: row for row in report["faults"]}
    assert set(rows) == {"WO-1001", "WO-1002"} and all(row["source"] == "work_order" for row in rows.values())
    assert rows["WO-1001"]["kind"] == "cavitation" and rows["WO-1001"]["detected"] and rows["WO-1001"]["severity"] is None
    assert 0 <= rows["WO-1001"]["delay_s"] < 30 * 60
    assert not rows["WO-1002"]["detected"]
    assert report["detection"]["faults"] == 2 and report["detection"]["detected"] == 1
    assert report["detection"]["by_kind"]["bearing_wear"]["detected"] == 0
    assert report["work_orders"]["used"] == 2
    assert report["work_orders"]["skipped"] == [{"number": "WO-1003", "equipment": "P-201", "reason": "has no fault_start (when the fault began is unknown)"}]
    alarms = BacktestAlarm.objects.filter(run=run, work_order=work_orders["found"])
    assert alarms.exists() and not BacktestAlarm.objects.filter(run=run, fault__isnull=False).exists()
    assert report["false_alarms"]["count"] == BacktestAlarm.objects.filter(run=run, work_order__isnull=True).count()


def test_scored_against_injections_ignores_work_orders(work_orders):
    report = run_with("injections").report
    assert report["ground_truth"] == "injections" and report["work_orders"] is None
    assert [row["source"] for row in report["faults"]] == ["injection"] and report["detection"]["detected"] == 1


def test_scored_against_both_counts_each_record_and_one_alarm_detects_the_fault_recorded_twice(work_orders):
    report = run_with("both").report
    sources = sorted((row["source"], row["kind"], row["detected"]) for row in report["faults"])
    assert sources == [("injection", "cavitation", True), ("work_order", "bearing_wear", False), ("work_order", "cavitation", True)]
    assert report["detection"]["faults"] == 3 and report["detection"]["detected"] == 2


def test_known_faults_refuse_an_unknown_truth(work_orders):
    with pytest.raises(ValueError, match="ground_truth must be one of injections, work_orders, both"):
        known_faults(ground_truth="rumours", equipment=[work_orders["found"].equipment], start=TRAIN_END, end=HISTORY_END)
    with pytest.raises(services.BacktestError, match="ground_truth"):
        services.create_backtest(start=TRAIN_END, end=HISTORY_END, ground_truth="rumours", enqueue=False)


def test_api_takes_and_returns_the_ground_truth(work_orders, monkeypatch):
    monkeypatch.setattr(services, "_enqueue", lambda run_id: None)
    client = api_client_for("engineer")
    body = {"start": TRAIN_END.isoformat(), "end": HISTORY_END.isoformat(), "equipment": ["P-201"], "diagnose": False, "ground_truth": "work_orders"}
    response = client.post("/api/v1/backtests/", body, format="json")
    assert response.status_code == 202 and response.json()["ground_truth"] == "work_orders"
    services.run_backtest(run_id=response.json()["id"])
    report = client.get(f"/api/v1/backtests/{response.json()['id']}/report/").json()
    assert report["ground_truth"] == "work_orders" and report["detection"]["faults"] == 2
    alarms = client.get(f"/api/v1/backtests/{response.json()['id']}/alarms/").json()["results"]
    assert any(a["work_order"] == "WO-1001" and a["fault_kind"] == "cavitation" and a["fault"] is None for a in alarms)
    bad = client.post("/api/v1/backtests/", {**body, "ground_truth": "rumours"}, format="json")
    assert bad.status_code == 400 and "rumours" in bad.json()["detail"]["ground_truth"][0]


def test_command_takes_the_ground_truth(work_orders, tmp_path):
    out = io.StringIO()
    call_command("phm_backtest", "--start", TRAIN_END.isoformat(), "--end", HISTORY_END.isoformat(), "--no-diagnosis",
                 "--ground-truth", "work_orders", "--json", str(tmp_path / "r.json"), stdout=out)
    text = out.getvalue()
    assert "ground truth: corrective work orders (2 work orders used, 1 left out: WO-1003 (P-201) has no fault_start" in text
    assert "faults detected before they end: 1/2" in text
    assert json.loads((tmp_path / "r.json").read_text())["ground_truth"] == "work_orders"
    with pytest.raises(CommandError):
        call_command("phm_backtest", "--hours", "1", "--ground-truth", "rumours", stdout=io.StringIO())


def test_the_page_flow_for_an_engineer_form_run_report_with_work_orders(work_orders, monkeypatch, django_capture_on_commit_callbacks):
    """From the page as an engineer: the form (with its ground-truth choice), the queued run, then
    the worker's run and the report page with the plot and the work orders; an operator reads the
    same pages without the form and cannot start one."""
    queued = []
    monkeypatch.setattr(services, "_enqueue", queued.append)
    engineer = page_client_for("engineer")
    listing = engineer.get("/backtests/").content.decode()
    assert 'name="ground_truth"' in listing and 'value="work_orders"' in listing
    with django_capture_on_commit_callbacks(execute=True):  # the run is sent to a worker when the form's transaction commits
        response = engineer.post("/backtests/start/", {"start": "2026-03-02T09:00", "end": "2026-03-02T10:00", "equipment": ["P-201"],
                                                       "ground_truth": "work_orders", "name": "with work orders"})
    run = BacktestRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/backtests/{run.pk}/" and run.ground_truth == "work_orders"
    queued_page = engineer.get(response["Location"]).content.decode()
    assert 'data-testid="status">queued' in queued_page and 'http-equiv="refresh"' in queued_page
    from phm.backtests.tasks import run_backtest as task

    task.apply(args=[run.pk])  # what the worker does with the queued id
    assert BacktestRun.objects.get().status == "succeeded"
    page = engineer.get(f"/backtests/{run.pk}/").content.decode()
    assert "scored against <span data-testid=\"ground-truth\">corrective work orders</span>" in page
    assert "faults detected before they end: 1/2" in page and "work order WO-1001" in page and "work order WO-1002" in page
    assert 'data-chart="pca-main"' in page and "cavitation (WO-1001)" in page  # the plot's shaded band names the work order
    assert '<script nonce="' in page  # Plotly's inline script carries the CSP nonce (without it no browser draws the chart)
    operator = page_client_for("operator")
    assert 'name="ground_truth"' not in operator.get("/backtests/").content.decode()
    assert "work order WO-1001" in operator.get(f"/backtests/{run.pk}/").content.decode()
    assert operator.post("/backtests/start/", {"start": "2026-03-02T09:00", "end": "2026-03-02T10:00"}).status_code == 403
    assert BacktestRun.objects.count() == 1 and queued == [run.pk]
