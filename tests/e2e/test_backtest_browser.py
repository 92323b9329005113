"""The backtest pages in a real browser: an engineer starts a backtest from the form on
/backtests/, the worker runs it, and the report page shows the report, the known faults and the
score plot; an operator reads the same report without the form."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.e2e.test_browser import browser, log_in, page, shot, users  # noqa: F401 (fixtures; skips without Chromium)
from tests.phm.backtests.helpers import pump_history  # noqa: F401 (fixture)

from playwright.sync_api import expect  # noqa: E402  (after the skip in test_browser)

pytestmark = pytest.mark.django_db(transaction=True)


def test_engineer_starts_a_backtest_from_the_page_and_an_operator_reads_its_report(page, live_server, users, pump_history, monkeypatch):
    from phm.assets.models import Equipment, WorkOrder
    from phm.backtests import services
    from phm.backtests.models import BacktestRun
    from tests.phm.backtests.helpers import FAULT_START

    WorkOrder.objects.create(equipment=Equipment.objects.get(tag="P-201"), number="WO-2001", opened_at=FAULT_START + timedelta(minutes=40),
                             fault="cavitation", fault_start=FAULT_START)
    queued: list[int] = []
    monkeypatch.setattr(services, "_enqueue", queued.append)  # no worker in this test: it runs the job below

    log_in(page, live_server, "engineer")
    page.goto(f"{live_server.url}/backtests/")
    form = page.get_by_test_id("start-backtest")
    form.get_by_label("Name").fill("from the page")
    form.get_by_label("From (UTC)").fill("2026-03-02T09:00")
    form.get_by_label("To (UTC)").fill("2026-03-02T10:00")
    form.get_by_label("Equipment").select_option("P-201")
    form.get_by_label("Score against").select_option("both")
    form.get_by_label("diagnose each alarm").uncheck()  # no diagnoser is trained in this test
    form.get_by_role("button", name="Start backtest").click()
    expect(page).to_have_url(re.compile(r"/backtests/\d+/$"))
    expect(page.get_by_test_id("status")).to_have_text("queued")
    run = BacktestRun.objects.get()
    assert queued == [run.pk] and run.ground_truth == "both" and [e.tag for e in run.equipment.all()] == ["P-201"]

    assert services.run_backtest(run_id=run.pk).status == "succeeded"  # what the worker does with the queued id
    page.reload()
    expect(page.get_by_test_id("status")).to_have_text("succeeded")
    expect(page.get_by_test_id("report")).to_contain_text("faults detected before they end: 2/2")
    expect(page.get_by_test_id("ground-truth")).to_have_text("fault injections and corrective work orders")
    expect(page.get_by_test_id("faults")).to_contain_text("work order WO-2001")
    chart = page.locator('div[data-chart="pca-main"] .js-plotly-plot')
    expect(chart.locator("g.trace path").first).to_be_attached()  # Plotly drew the score
    shot(page, "20-backtest-report-engineer")

    page.context.clear_cookies()  # log out
    log_in(page, live_server, "operator")
    page.goto(f"{live_server.url}/backtests/")
    expect(page.locator(f'tr[data-run="{run.pk}"]')).to_be_visible()
    expect(page.get_by_test_id("start-backtest")).to_have_count(0)
    page.goto(f"{live_server.url}/backtests/{run.pk}/")
    expect(page.get_by_test_id("report")).to_contain_text("faults detected before they end: 2/2")
    expect(page.locator('div[data-chart="pca-main"] .js-plotly-plot g.trace path').first).to_be_attached()
    shot(page, "21-backtest-report-operator")
