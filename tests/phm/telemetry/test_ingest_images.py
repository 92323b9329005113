"""ingest_images: real decode, thumbnails, dedupe by content, reasons for refusals."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from connectors.records import ImageRecord
from phm.telemetry.models import InspectionImage, QuarantinedRecord
from phm.telemetry.services import MAX_IMAGE_BYTES, ingest_images


def picture(fmt: str = "PNG", size=(640, 480)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 90, 40)).save(buffer, format=fmt)
    return buffer.getvalue()


def record(content: bytes, media_type: str = "image/png", source: str = "P-101", ts=None, t0=None) -> ImageRecord:
    return ImageRecord(source=source, ts=ts or t0, content=content, media_type=media_type, filename="inspection.png")


@pytest.fixture
def images_dir(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def test_image_is_stored_with_size_and_a_thumbnail(plant, t0, images_dir):
    result = ingest_images(records=[record(picture(), t0=t0)])
    assert (result.accepted, result.duplicate, result.rejected) == (1, 0, 0)
    stored = InspectionImage.objects.get()
    assert (stored.width, stored.height, stored.ts) == (640, 480, t0)
    with Image.open(stored.thumbnail.path) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) == 320


def test_same_bytes_again_are_a_duplicate(plant, t0, images_dir):
    ingest_images(records=[record(picture(), t0=t0)])
    result = ingest_images(records=[record(picture(), t0=t0)])
    assert (result.accepted, result.duplicate) == (0, 1) and InspectionImage.objects.count() == 1


def test_refusals_say_why_and_are_quarantined(plant, t0, images_dir):
    records = [
        record(picture(), source="X-9", t0=t0),
        record(picture(), media_type="image/gif", t0=t0),
        record(picture("JPEG"), media_type="image/png", t0=t0),
        record(b"%PDF-1.4 not an image", t0=t0),
        record(picture()[:200], t0=t0),
        record(b"\\x89PNG" + b"0" * (MAX_IMAGE_BYTES + 1), t0=t0),
    ]
    result = ingest_images(records=records, channel="test")
    assert (result.accepted, result.rejected) == (0, 6)
    errors = [r.error for r in result.rejections]
    assert "unknown equipment 'X-9'" in errors[0]
    assert "image/gif" in errors[1]
    assert "JPEG" in errors[2] and "image/png" in errors[2]
    assert "image/png" in errors[3] and "image/png" in errors[4]
    assert str(MAX_IMAGE_BYTES) in errors[5]
    assert QuarantinedRecord.objects.filter(kind="image", channel="test").count() == 6
    assert not InspectionImage.objects.exists()
