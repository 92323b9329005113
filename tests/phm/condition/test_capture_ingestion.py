"""Capture ingestion service on SQLite and PostgreSQL: stored once, validated with the field named,
quarantined when refused, one bad capture never sinks a batch; file readers for npz and CSV."""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pytest

from phm.condition.captures import CaptureRejected, ingest_capture, ingest_captures, record_from_file, record_from_json
from phm.condition.models import WaveformCapture
from phm.telemetry.models import QuarantinedRecord, RecordKind
from tests.conftest import ALL_DATABASES, make_plant
from tests.phm.condition.helpers import RATE, record, waveform

pytestmark = pytest.mark.django_db(databases=ALL_DATABASES)


def test_capture_is_stored_once_as_one_blob(db_alias, t0):
    make_plant(db_alias)
    samples = waveform()
    first = ingest_capture(record=record(t0, samples=samples), using=db_alias)
    again = ingest_capture(record=record(t0, samples=samples), using=db_alias)
    assert first.created and not again.created and again.capture.pk == first.capture.pk
    stored = WaveformCapture.objects.using(db_alias).get()
    assert stored.n_samples == 25_600 and len(bytes(stored.samples)) == 4 * 25_600
    np.testing.assert_array_equal(stored.waveform(), samples)
    assert stored.point.name == "DE"  # created by name on first use
    assert 1.0 < stored.velocity_rms_mm_s < 2.0  # 2 mm/s peak at 1x + small 2x/3x


def test_same_instant_in_another_zone_is_a_duplicate(db_alias, t0):
    from zoneinfo import ZoneInfo

    make_plant(db_alias)
    ingest_capture(record=record(t0), using=db_alias)
    outcome = ingest_capture(record=record(t0.astimezone(ZoneInfo("Europe/Berlin"))), using=db_alias)
    assert not outcome.created and WaveformCapture.objects.using(db_alias).count() == 1


@pytest.mark.parametrize(
    ("changes", "field", "text"),
    [
        ({"sample_rate_hz": 50.0}, "sample_rate_hz", "outside 256-204800 Hz"),
        ({"samples": np.ones(100, dtype=np.float32)}, "samples", "100 samples is outside"),
        ({"samples": np.concatenate([np.zeros(5000), [np.nan], np.zeros(5000)])}, "samples", "first at index 5000"),
        ({"samples": np.full(5000, 1e39)}, "samples", "beyond float32"),
        ({"sample_rate_hz": 200_000.0, "samples": np.zeros(5000)}, "samples", "0.025 s"),
        ({"unit": "furlongs"}, "unit", "not one of"),
        ({"equipment": "X-999"}, "equipment", "no equipment with tag 'X-999'"),
        ({"point": "../etc"}, "point", "not a point name"),
        ({"captured_at": None}, "captured_at", "no capture time"),
        ({"speed_rpm": -5.0}, "speed_rpm", "positive"),
    ],
)
def test_bad_capture_is_refused_naming_the_field_and_quarantined(db_alias, t0, changes, field, text):
    make_plant(db_alias)
    with pytest.raises(CaptureRejected) as caught:
        ingest_capture(record=record(t0, **changes), using=db_alias)
    assert caught.value.field == field and text in str(caught.value)
    assert str(caught.value).startswith("test: ")  # the origin (file or client reference) first
    row = QuarantinedRecord.objects.using(db_alias).get()
    assert row.kind == RecordKind.CAPTURE and text in row.error
    assert len(row.payload["first_samples"]) <= 16  # metadata and a peek, never the whole waveform
    assert not WaveformCapture.objects.using(db_alias).exists()


def test_one_bad_capture_never_sinks_the_batch(db_alias, t0):
    make_plant(db_alias)
    batch = [record(t0), record(t0 + timedelta(minutes=1), sample_rate_hz=-1.0), record(t0 + timedelta(minutes=2)), record(t0)]
    result = ingest_captures(records=batch, source="connector", channel="file:x", using=db_alias)
    assert (result.accepted, result.duplicate, result.rejected) == (2, 1, 1)
    assert result.rejections[0].index == 1 and "sample_rate_hz" in result.rejections[0].error
    assert QuarantinedRecord.objects.using(db_alias).filter(kind=RecordKind.CAPTURE, channel="file:x").count() == 1


def test_json_body_with_list_or_base64(t0, db):
    make_plant()
    samples = waveform()[:4096]
    common = {"equipment": "P-101", "point": "DE", "captured_at": t0.isoformat(), "sample_rate_hz": 25600, "unit": "g"}
    import base64

    as_b64 = record_from_json({**common, "samples_b64": base64.b64encode(samples.astype("<f4").tobytes()).decode()})
    np.testing.assert_array_equal(as_b64.samples, samples)
    as_list = record_from_json({**common, "samples": samples.tolist()})
    np.testing.assert_allclose(as_list.samples, samples)
    for body, field in [({**common}, "samples"), ({**common, "samples": [1, "x"]}, "samples"), ({**common, "samples_b64": "!!"}, "samples_b64"),
                        ({**common, "samples_b64": "AAA="}, "samples_b64"), ({**common, "captured_at": "2026-13-01T00:00:00Z", "samples": []}, "captured_at"),
                        ({**common, "sample_rate_hz": "fast", "samples": []}, "sample_rate_hz"), ({**common, "samples": [], "colour": 1}, "colour"),
                        ([1, 2], "body")]:
        with pytest.raises(CaptureRejected) as caught:
            record_from_json(body)
        assert caught.value.field == field


def _npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_npz_file_with_metadata_and_form_fields(t0, db):
    samples = waveform()[:8192]
    content = _npz(samples=samples, sample_rate_hz=np.array(RATE), captured_at=np.array(t0.isoformat()), point=np.array("NDE"))
    parsed = record_from_file(name="p101.capture.npz", content=content, fields={"equipment": "P-101", "point": "ignored", "unit": "g"})
    assert (parsed.point, parsed.equipment, parsed.sample_rate_hz, parsed.captured_at) == ("NDE", "P-101", RATE, t0)
    named = record_from_file(name="cwru.npz", content=_npz(DE=samples.reshape(-1, 1)), fields={"array": "DE", "sample_rate_hz": "12000"})
    assert named.samples.shape == (8192,) and named.sample_rate_hz == 12000
    with pytest.raises(CaptureRejected, match="no array 'samples'.*DE"):
        record_from_file(name="cwru.npz", content=_npz(DE=samples), fields={"sample_rate_hz": "12000"})
    with pytest.raises(CaptureRejected, match="not a readable .npz"):
        record_from_file(name="junk.npz", content=b"PK\x03\x04 not really", fields={})


def test_npz_that_decodes_past_the_limit_is_refused_before_loading(settings, db):
    settings.PHM_UPLOAD_MAX_CAPTURE_BYTES = 1_000_000
    bomb = io.BytesIO()
    np.savez_compressed(bomb, samples=np.zeros(2_000_000, dtype=np.float32))  # 8 MB of zeros, a few kB compressed
    assert len(bomb.getvalue()) < 100_000
    with pytest.raises(CaptureRejected, match="decodes to 8,000,"):
        record_from_file(name="bomb.npz", content=bomb.getvalue(), fields={"sample_rate_hz": "25600"})


def test_csv_one_column_or_time_value(t0, db):
    samples = np.round(waveform()[:2048], 5)
    one = "\n".join(["# sample_rate_hz: 25600", f"# captured_at: {t0.isoformat()}", "accel_g", *map(str, samples)])
    parsed = record_from_file(name="a.capture.csv", content=one.encode(), fields={"equipment": "P-101", "point": "DE"})
    assert parsed.sample_rate_hz == 25600 and parsed.captured_at == t0 and len(parsed.samples) == 2048
    two = "time,value\n" + "\n".join(f"{i / 10000:.6f},{v}" for i, v in enumerate(samples))
    parsed = record_from_file(name="b.csv", content=two.encode(), fields={})
    assert parsed.sample_rate_hz == pytest.approx(10_000, rel=1e-6)
    jitter = "time,value\n0,1\n0.001,2\n0.0025,3\n0.003,4\n"
    with pytest.raises(CaptureRejected, match="not uniformly spaced") as caught:
        record_from_file(name="c.csv", content=jitter.encode(), fields={})
    assert caught.value.field == "time"
    with pytest.raises(CaptureRejected, match="row 3") as caught:
        record_from_file(name="d.csv", content=b"v\n1\n2\nthree\n", fields={"sample_rate_hz": "1000"})
    assert caught.value.field == "v"


def test_upload_over_the_size_limit_is_refused(settings, db):
    from phm.uploads import UploadTooLarge

    settings.PHM_UPLOAD_MAX_CAPTURE_BYTES = 1000
    with pytest.raises(UploadTooLarge, match="PHM_UPLOAD_MAX_CAPTURE_BYTES"):
        record_from_file(name="big.csv", content=b"1\n" * 1000, fields={})
