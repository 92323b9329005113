"""Operator pages render the plant and its charts; they need a login."""

from __future__ import annotations

import re
from datetime import timedelta

from django.utils import timezone

from connectors.records import Reading
from phm.telemetry.services import ingest_readings


def test_overview_requires_login(client, plant):
    response = client.get("/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_overview_lists_equipment_and_flags_stale_sensors(client, plant, api_user):
    now = timezone.now()
    ingest_readings(readings=[Reading("P-101.VIB", now, 2.0), Reading("P-101.TEMP", now, 40.0)])
    client.force_login(api_user)
    page = client.get("/").content.decode()
    assert "P-101" in page and "Feed pump" in page
    assert "1 stale sensor" in page  # P-101.PRESS never reported


def test_equipment_page_has_a_chart_per_sensor(client, plant, api_user):
    now = timezone.now()
    ingest_readings(readings=[Reading("P-101.VIB", now - timedelta(seconds=i), 2.0 + i % 7) for i in range(2000)])
    client.force_login(api_user)
    page = client.get("/equipment/P-101/?range=1h").content.decode()
    assert page.count('data-sensor="') == 3
    assert "Plotly.newPlot" in page
    counts = dict(re.findall(r"<code>([^<]+)</code> \((\d+) points\)", page))
    # 2000 vibration readings over 1 h are bucketed server-side (6 s buckets); no temperature data.
    assert 300 <= int(counts["P-101.VIB"]) <= 600 and counts["P-101.TEMP"] == "0"


def test_plotly_js_is_served_locally(client, db):
    response = client.get("/vendor/plotly.min.js")
    assert response.status_code == 200 and len(response.content) > 1_000_000


def test_equipment_page_groups_log_events_by_template(client, plant, api_user):
    from connectors.records import LogRecord
    from phm.telemetry.services import ingest_logs

    now = timezone.now()
    ingest_logs(records=[LogRecord("P-101", now - timedelta(seconds=i), "WARN" if i % 2 else "INFO", f"seal pressure low: {i} bar", template_id="tpl-seal") for i in range(6)])
    client.force_login(api_user)
    page = client.get("/equipment/P-101/?range=1h").content.decode()
    table = page[page.index('data-testid="log-templates"'):]
    # Six lines of one mined template are one row, counted with their levels.
    assert re.search(r"<td>6</td><td>INFO 3, WARN 3</td>", table), table[:800]


def test_inspection_images_are_served_to_signed_in_users_only(client, plant, api_user, settings, tmp_path):
    """Uploaded images are plant data: served by a login-checked view, with DEBUG off as in production."""
    import io

    from PIL import Image

    from connectors.records import ImageRecord
    from phm.telemetry.models import InspectionImage
    from phm.telemetry.services import ingest_images

    settings.MEDIA_ROOT = tmp_path
    settings.DEBUG = False
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, "PNG")
    ingest_images(records=[ImageRecord("P-101", timezone.now(), buffer.getvalue(), "image/png", filename="seal.png")])
    image = InspectionImage.objects.get()
    url = image.file.url
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(api_user)
    response = client.get(url)
    assert response.status_code == 200 and b"".join(response.streaming_content) == buffer.getvalue()
    assert client.get(image.thumbnail.url).status_code == 200
    page = client.get("/equipment/P-101/").content.decode()
    assert image.thumbnail.url in page
    assert client.get(f"{settings.MEDIA_URL}../phm.sqlite3").status_code == 404
    assert client.get(f"/{settings.MEDIA_URL.strip('/')}/%2e%2e/secret_key").status_code == 404
