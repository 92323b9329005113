"""``manage.py phm_connectors`` end to end: an MQTT JSON connector stored in the database, a real
Mosquitto broker, rows in the database, status stored, offsets of log files in the database."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from datetime import timedelta

import paho.mqtt.client as mqtt
import pytest
from django.core.management import call_command
from paho.mqtt.enums import CallbackAPIVersion

from connectors.logs import LogOffset
from phm.sources.models import ConnectorDefinition, ConnectorStatus
from phm.sources.services import DatabaseOffsetStore
from phm.telemetry.models import QuarantinedRecord, Reading as ReadingRow
from tests.conftest import make_plant


def broker_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 1883), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not broker_up(), reason="no MQTT broker on 127.0.0.1:1883")
def test_command_runs_enabled_connectors_into_the_database(t0, tmp_path, monkeypatch):
    monkeypatch.setenv("PHM_SPOOL_DIR", str(tmp_path / "spool"))
    make_plant()
    prefix = f"plant{uuid.uuid4().hex[:6]}"
    ConnectorDefinition.objects.create(
        name="mqtt-north",
        kind="mqtt_json",
        config={
            "broker": {"client_id": f"phm-test-{prefix}", "clean_session": True},
            "mappings": [{"topic": f"{prefix}/+", "tag": "P-101.{levels[1]}"}],
        },
    )
    ConnectorDefinition.objects.create(name="disabled", kind="mqtt_json", enabled=False, config={"mappings": [{"topic": "x"}]})
    runner = threading.Thread(target=call_command, args=("phm_connectors", "--seconds", "4", "--tick", "0.3"), daemon=True)
    runner.start()
    deadline = time.monotonic() + 5
    while not ConnectorStatus.objects.filter(connector__name="mqtt-north", connected=True).exists():
        assert time.monotonic() < deadline, "connector never connected"
        time.sleep(0.1)
    publisher = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    publisher.connect("127.0.0.1", 1883)
    publisher.loop_start()
    for i in range(20):
        body = {"ts": (t0 + timedelta(seconds=i)).isoformat(), "value": float(i)}
        publisher.publish(f"{prefix}/VIB", json.dumps(body), qos=1).wait_for_publish(5)
    publisher.publish(f"{prefix}/TEMP", b"not json", qos=1).wait_for_publish(5)
    publisher.disconnect()
    publisher.loop_stop()
    runner.join(15)
    assert not runner.is_alive()
    assert ReadingRow.objects.filter(sensor__tag="P-101.VIB").count() == 20
    status = ConnectorStatus.objects.get(connector__name="mqtt-north")
    assert (status.state, status.messages, status.accepted, status.rejected) == ("stopped", 21, 20, 1)
    assert status.last_message_at is not None
    assert not ConnectorStatus.objects.filter(connector__name="disabled").exists()
    assert QuarantinedRecord.objects.filter(channel="mqtt_json:mqtt-north", error__contains="not JSON").count() == 1


@pytest.mark.django_db(transaction=True)
def test_command_runs_watched_folders_for_images_and_historian_files_into_the_database(tmp_path, monkeypatch, settings):
    """The image and historian-file folders, defined in the database, run under ``phm_connectors``:
    files dropped in them end up as rows and images; a broken image is refused with its reason."""
    import io

    from PIL import Image

    from phm.telemetry.models import InspectionImage

    monkeypatch.setenv("PHM_SPOOL_DIR", str(tmp_path / "spool"))
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PHM_CONNECTOR_ROOTS = [tmp_path]
    make_plant()
    images, historian = tmp_path / "images", tmp_path / "historian"
    (images / "P-101").mkdir(parents=True)
    historian.mkdir()
    ConnectorDefinition.objects.create(name="image-inbox", kind="image_folder", config={"directory": str(images), "poll_interval_s": 0.2, "settle_s": 0.2})
    ConnectorDefinition.objects.create(
        name="historian-drop", kind="file_folder",
        config={"directory": str(historian), "spec": {"separator": ";", "decimal": ","}, "poll_interval_s": 0.2, "settle_s": 0.2},
    )
    buffer = io.BytesIO()
    Image.new("RGB", (120, 80), (10, 120, 200)).save(buffer, "JPEG")
    (images / "P-101" / "seal.jpg").write_bytes(buffer.getvalue())
    (images / "P-101" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    rows = "\n".join(f"2026-03-01T00:00:{i:02d}Z;{2 + i / 10:.1f}".replace(".", ",") for i in range(30))
    (historian / "export.csv").write_text(f"timestamp;P-101.VIB\n{rows}\n")

    call_command("phm_connectors", "--seconds", "4", "--tick", "0.3")

    assert ReadingRow.objects.filter(sensor__tag="P-101.VIB").count() == 30
    assert (historian / "done" / "export.csv").exists()
    image = InspectionImage.objects.get()
    assert (image.equipment.tag, image.media_type, image.width, image.height) == ("P-101", "image/jpeg", 120, 80)
    assert (images / "P-101" / "broken.png").exists() is False
    assert QuarantinedRecord.objects.filter(channel__contains="image-inbox").count() == 1
    statuses = {s.connector.name: s for s in ConnectorStatus.objects.select_related("connector")}
    assert statuses["historian-drop"].accepted == 30 and statuses["image-inbox"].rejected == 1


@pytest.mark.django_db
def test_database_offset_store_round_trip():
    store = DatabaseOffsetStore()
    assert store.get("/var/log/plc.log") is None
    store.set("/var/log/plc.log", LogOffset(12, 340, "abc", 3))
    store.set("/var/log/plc.log", LogOffset(12, 400, "abc", 3))
    assert store.get("/var/log/plc.log") == LogOffset(12, 400, "abc", 3)
