"""The web pages in a real browser: Playwright driving Debian's Chromium (headless) against
pytest-django's live server. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
PASSWORD = "demo-pass-1"

if importlib.util.find_spec("playwright") is None:
    pytest.skip("playwright is not installed (pip install playwright)", allow_module_level=True)
if not (CHROMIUM.exists() or shutil.which("chromium")):
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API runs an event loop in this thread; the test's ORM calls are still plain
    # synchronous code, so Django's async-safety guard would refuse them without this.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # Import every app's URLs (the assistant's pull in the language-model stack) before the first
    # page load, so that one-off cost does not count against a page's timeout.
    from django.urls import get_resolver

    get_resolver().url_patterns
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(20_000)
    context.set_default_navigation_timeout(30_000)
    page = context.new_page()
    # The Content-Security-Policy must not block anything the pages need (Plotly, htmx, chat).
    blocked: list[str] = []
    page.on("console", lambda message: blocked.append(message.text) if "Content Security Policy" in message.text else None)
    yield page
    context.close()
    assert not blocked, f"CSP blocked: {blocked[:3]}"


@pytest.fixture
def users(db):
    call_command("phm_users", password=PASSWORD, stdout=open(os.devnull, "w"))


@pytest.fixture
def demo_plant(users):
    """The demo plant (P-101, M-101, P-201, F-401, CH-501) with a few minutes of history."""
    call_command("phm_demo", hours=0.05, no_knowledge_base=True, stdout=open(os.devnull, "w"))


def log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("whoami")).to_contain_text(username)


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_operator_sees_demo_plant_and_an_equipment_chart(page, live_server, demo_plant):
    log_in(page, live_server, "operator")
    for tag in ("P-101", "M-101", "P-201", "F-401", "CH-501"):
        expect(page.locator(f'tr[data-equipment="{tag}"]')).to_be_visible()
    shot(page, "01-plant-overview")
    page.get_by_role("link", name="P-101", exact=True).click()
    expect(page).to_have_url(re.compile(r"/equipment/P-101/"))
    # Plotly draws an SVG per chart; a chart with data has a trace path.
    first_chart = page.locator("div[data-sensor] .js-plotly-plot").first
    expect(first_chart.locator("g.trace path").first).to_be_attached()
    # One chart card per enabled sensor. to_have_count waits: a bare count() ran while a loaded
    # machine was still parsing the page and saw 2 of P-101's cards.
    from phm.assets.models import Equipment

    enabled = Equipment.objects.get(tag="P-101").sensors.filter(enabled=True).count()
    assert enabled >= 3
    expect(page.locator("div[data-sensor]")).to_have_count(enabled)
    shot(page, "02-equipment-P-101")


def test_equipment_page_shows_score_band_alarm_logs_and_image(page, live_server, demo_plant, settings, tmp_path):
    """Every panel of the equipment page with data in it: detector score with its threshold and an
    alarm marker, the log-template timeline, and an inspection image served through the login."""
    import io

    from PIL import Image

    from connectors.records import ImageRecord, LogRecord
    from phm.alarms.services import AlarmPolicy, Sample, evaluate_scores
    from phm.analytics.models import AnomalyScore, DetectorConfig
    from phm.assets.models import Equipment
    from phm.telemetry.services import ingest_images, ingest_logs

    settings.MEDIA_ROOT = tmp_path
    pump = Equipment.objects.get(tag="P-101")
    now = timezone.now()
    config = DetectorConfig.objects.create(equipment=pump, name="pca-e2e", method="pca")
    scores = [0.3 + 0.02 * (i % 5) + (2.5 if i >= 15 else 0.0) for i in range(18)]
    AnomalyScore.objects.bulk_create(
        AnomalyScore(config=config, ts=now - timedelta(seconds=10 * (18 - i)), score=score, threshold=1.0) for i, score in enumerate(scores)
    )
    evaluate_scores(equipment=pump, source="detector:pca-e2e", samples=[Sample(now - timedelta(seconds=30), 2.8)], policy=AlarmPolicy(threshold=1.0))
    ingest_logs(records=[
        LogRecord("P-101", now - timedelta(seconds=20 - i), "WARN", f"Seal leak detector level {3 + i} above 2", "seal-leak", [str(3 + i), "2"])
        for i in range(3)
    ])
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (180, 40, 40)).save(buffer, "PNG")
    ingest_images(records=[ImageRecord("P-101", now - timedelta(seconds=5), buffer.getvalue(), "image/png", filename="seal.png")])

    log_in(page, live_server, "operator")
    page.goto(f"{live_server.url}/equipment/P-101/?range=1h")
    score_chart = page.get_by_test_id("score-chart")
    expect(score_chart).to_contain_text("1 alarm in range")
    expect(score_chart.locator("g.trace path").first).to_be_attached()
    expect(page.get_by_test_id("log-templates")).to_contain_text("Seal leak detector level")
    image = page.get_by_alt_text("inspection image of P-101")
    expect(image).to_be_visible()
    assert page.evaluate("img => img.naturalWidth", image.element_handle()) > 0  # the bytes came through the login
    shot(page, "02b-equipment-P-101-all-panels")


def test_operator_sees_the_rul_panel_and_the_overview_rul_column(page, live_server, demo_plant):
    """The demo's pumps have an RUL on first start: the panel draws health and RUL with its
    interval and says how many failures it rests on; the overview has the RUL column."""
    log_in(page, live_server, "operator")
    expect(page.locator('tr[data-equipment="P-101"] [data-testid="rul-cell"]')).to_contain_text("failures")
    page.goto(f"{live_server.url}/equipment/P-101/")
    panel = page.get_by_test_id("rul-panel")
    expect(panel.get_by_test_id("rul-sentence")).to_contain_text("from 16 run-to-failure histories")
    expect(panel.locator("g.trace path").first).to_be_attached()
    panel.scroll_into_view_if_needed()
    panel.screenshot(path=str(SCREENSHOTS / "02c-equipment-P-101-rul-panel.png"))


def test_operator_acknowledges_an_alarm_on_the_console(page, live_server, users):
    from phm.alarms.models import Alarm, AlarmState
    from phm.alarms.services import AlarmPolicy, Sample, evaluate_scores
    from tests.conftest import make_plant

    pump, _ = make_plant()
    evaluate_scores(equipment=pump, source="detector:pca", samples=[Sample(timezone.now() - timedelta(minutes=2), 4.0)], policy=AlarmPolicy(threshold=1.0))
    alarm = Alarm.objects.get(equipment=pump)
    log_in(page, live_server, "operator")
    page.goto(f"{live_server.url}/console/")
    row = page.locator(f'tr[data-alarm="{alarm.pk}"]')
    expect(row).to_contain_text("Active, unacknowledged")
    expect(row.locator(".badge")).to_contain_text(alarm.band.upper())
    shot(page, "03-console-before-ack")
    # A new alarm shows up without reloading: htmx polls the rows every 5 s.
    evaluate_scores(equipment=pump, source="detector:iforest", samples=[Sample(timezone.now(), 1.5)], policy=AlarmPolicy(threshold=1.0))
    expect(page.locator("tr[data-alarm]").filter(has_text="detector:iforest")).to_be_visible(timeout=15_000)
    row.locator('input[name="comment"]').first.fill("checking bearing")
    row.get_by_role("button", name="Acknowledge").click()
    expect(page.locator(f'tr[data-alarm="{alarm.pk}"]')).to_contain_text("Active, acknowledged")
    page.locator(f'tr[data-alarm="{alarm.pk}"]').get_by_role("link", name="journal").click()
    expect(page.locator("#journal-panel")).to_contain_text("checking bearing")
    shot(page, "04-console-after-ack-journal")
    alarm.refresh_from_db()
    assert alarm.state == AlarmState.ACTIVE_ACK and alarm.acknowledged_by.username == "operator"


def test_operator_asks_the_assistant_and_opens_a_source_passage(page, live_server, users):
    """SmolLM2 on the CPU, MiniLM and the grounding check, for real: about 20 s (plus the one-off
    GGUF conversion when the model cache is cold)."""
    from phm.assistant import services

    kb = Path(services.__file__).parent / "demo_kb"
    services.load_paths([kb / "procedure_cavitation.md"])
    log_in(page, live_server, "operator")
    page.goto(f"{live_server.url}/chat/")
    page.get_by_label("Question").fill("How do I recognise cavitation in a centrifugal pump?")
    page.get_by_role("button", name="Ask").click()
    turn = page.locator(".turn[data-done=true]")
    expect(turn).to_be_visible(timeout=240_000)
    # Every sentence of a grounded answer carries the [n] of the passage that supports it.
    inline = turn.locator(".answer a.cite").first
    expect(inline).to_have_text(re.compile(r"^\[\d+\]$"))
    source = turn.locator(".sources a.source").first
    expect(source).to_contain_text("cavitation", ignore_case=True)
    inline.click()
    expect(page.locator("dialog#passage")).to_be_visible()
    expect(page.locator("#passage-text")).to_contain_text("cavitation", ignore_case=True)
    shot(page, "05-chat-cited-answer")


def test_operator_cannot_open_engineer_pages(page, live_server, users):
    log_in(page, live_server, "operator")
    expect(page.locator("header")).not_to_contain_text("Models")
    response = page.goto(f"{live_server.url}/models/")
    assert response.status == 403
    shot(page, "06-operator-models-forbidden")


def test_engineer_sees_models_with_training_progress(page, live_server, users):
    from phm.analytics.models import DetectorConfig, TrainingJob
    from tests.conftest import make_plant

    pump, sensors = make_plant()
    config = DetectorConfig.objects.create(equipment=pump, name="pca-main", method="pca")
    config.sensors.set(sensors.values())
    TrainingJob.objects.create(config=config, train_start=timezone.now() - timedelta(hours=1), train_end=timezone.now(),
                               status="running", stage="epoch", percent=40.0, epoch=4, epochs=10, loss=0.0321, eta_s=12)
    log_in(page, live_server, "engineer")
    page.goto(f"{live_server.url}/models/")
    expect(page.locator("progress").first).to_have_attribute("value", "40")
    expect(page.locator("#job-rows")).to_contain_text("4 / 10")
    shot(page, "07-engineer-models")


def test_engineer_sees_connectors_and_documents(page, live_server, users):
    from phm.assistant import services
    from phm.sources.models import ConnectorDefinition, ConnectorStatus

    mqtt = ConnectorDefinition.objects.create(name="mqtt-north", kind="mqtt_json", config={"mappings": [{"topic": "plant/#"}]})
    ConnectorStatus.objects.create(connector=mqtt, state="running", connected=True, last_message_at=timezone.now(),
                                   messages=1520, accepted=1518, rejected=2, last_error="payload is not JSON (plant/P-101/temp)")
    kb = Path(services.__file__).parent / "demo_kb"
    services.load_paths([kb / "procedure_cavitation.md"])
    log_in(page, live_server, "engineer")
    page.goto(f"{live_server.url}/connectors/")
    row = page.locator("tr", has_text="mqtt-north")
    expect(row).to_contain_text("1518")
    expect(row).to_contain_text("payload is not JSON")
    shot(page, "08-engineer-connectors")
    page.goto(f"{live_server.url}/assistant/documents/")
    expect(page.locator("body")).to_contain_text("procedure_cavitation.md")
    shot(page, "09-engineer-documents")


def test_ask_assistant_on_an_alarm_opens_the_chat_with_that_alarm(page, live_server, users):
    from phm.alarms.models import Alarm
    from phm.alarms.services import AlarmPolicy, Sample, evaluate_scores
    from tests.conftest import make_plant

    pump, _ = make_plant()
    evaluate_scores(equipment=pump, source="detector:pca", samples=[Sample(timezone.now(), 3.0)], policy=AlarmPolicy(threshold=1.0))
    alarm = Alarm.objects.get(equipment=pump)
    log_in(page, live_server, "operator")
    page.goto(f"{live_server.url}/console/")
    page.locator(f'tr[data-alarm="{alarm.pk}"]').get_by_role("link", name="ask assistant").click()
    expect(page).to_have_url(re.compile(r"/chat/\?alarm="))
    expect(page.get_by_label("Question")).to_have_value(re.compile(r"Alarm on P-101 \(detector:pca.*on P-101\. What are the likely causes"))
    expect(page.get_by_label("Equipment (optional)")).to_have_value("P-101")
    shot(page, "10-chat-prefilled-from-alarm")
