"""The equipment page's Vibration section in a real browser (Playwright + Debian's Chromium): an
operator opens P-101 during the demo's bearing fault and sees the envelope spectrum drawn, with its
defect-frequency markers. Screenshot: test-artifacts/screenshots/10-vibration-P-101.png."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.e2e.test_browser import SCREENSHOTS, browser, demo_plant, log_in, page, users  # noqa: F401  (fixtures)

from playwright.sync_api import expect  # noqa: E402  (after the module-level skips of test_browser)

pytestmark = pytest.mark.django_db(transaction=True)


def test_operator_sees_the_envelope_spectrum_with_defect_markers_during_bearing_wear(page, live_server, demo_plant):  # noqa: F811
    from connectors.simulator import ScheduledFault
    from phm.condition.demo import simulate_captures
    from phm.condition.models import WaveformCapture

    now = timezone.now()
    fault = ScheduledFault("P-101", "bearing_wear", now - timedelta(hours=2), now + timedelta(hours=1), ramp_s=3600)
    simulate_captures(start=now - timedelta(hours=3), end=now, faults=[fault], every_s=1800)
    latest = WaveformCapture.objects.filter(equipment__tag="P-101", point__name="DE").order_by("-captured_at").first()
    assert latest is not None
    log_in(page, live_server, "operator")
    page.goto(f"{live_server.url}/equipment/P-101/?point=DE#vibration")
    envelope = page.get_by_test_id("vibration-envelope")
    expect(envelope.locator(".js-plotly-plot g.trace path").first).to_be_attached()
    expect(envelope.locator(".annotation-text", has_text=re.compile(r"^BPFO$"))).to_have_count(1)
    expect(envelope.locator(".annotation-text", has_text=re.compile(r"^2×BPFO$"))).to_have_count(1)
    expect(page.get_by_test_id("vibration-trend").locator(".js-plotly-plot g.trace path").first).to_be_attached()
    expect(page.get_by_test_id("capture-summary")).to_contain_text("DE")
    expect(page.get_by_test_id("capture-upload")).to_have_count(0)  # operators read; engineers upload
    page.get_by_test_id("vibration").screenshot(path=str(SCREENSHOTS / "10-vibration-P-101.png"))
