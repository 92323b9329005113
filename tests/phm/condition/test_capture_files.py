"""Capture files through the historian-file upload (job) and the watched-folder connector: a
``*.capture.npz`` / ``*.capture.csv`` becomes one capture, never thousands of readings; a bad one is
quarantined and the file moves to rejected/ with the reason; other files keep the readings path."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from connectors.file_folder import HistorianFolderSource
from connectors.files import FileSpec
from phm.condition.models import WaveformCapture
from phm.sources.registry import ConfigError, build_connector
from phm.telemetry import jobs
from phm.telemetry.models import FileIngestJob, JobStatus, QuarantinedRecord, Reading
from phm.telemetry.sink import DatabaseSink
from tests.phm.condition.helpers import waveform

pytestmark = pytest.mark.django_db


def npz_bytes(samples: np.ndarray, **metadata) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, samples=samples, **{k: np.array(v) for k, v in metadata.items()})
    return buffer.getvalue()


def test_historian_upload_of_a_capture_file_stores_one_capture(plant, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    content = npz_bytes(waveform(), sample_rate_hz=25600.0, captured_at="2026-03-01T10:00:00+00:00")
    job = jobs.create_file_job(uploaded_file=SimpleUploadedFile("p101-de.capture.npz", content),
                               spec={"capture": {"equipment": "P-101", "point": "DE", "unit": "g"}})
    job = jobs.run_file_job(job_id=job.pk)
    assert (job.status, job.accepted, job.rows_done) == (JobStatus.SUCCEEDED, 1, 1)
    capture = WaveformCapture.objects.get()
    assert (capture.point.name, capture.n_samples, capture.source, capture.origin) == ("DE", 25_600, "connector", "p101-de.capture.npz")
    assert not Reading.objects.exists()


def test_historian_upload_of_a_bad_capture_fails_the_job_with_the_reason(plant, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    content = npz_bytes(waveform()[:500], sample_rate_hz=25600.0, captured_at="2026-03-01T10:00:00+00:00")
    job = jobs.create_file_job(uploaded_file=SimpleUploadedFile("short.capture.npz", content),
                               spec={"capture": {"equipment": "P-101", "point": "DE"}})
    job = jobs.run_file_job(job_id=job.pk)
    assert job.status == JobStatus.FAILED and job.rejected == 1 and "short.capture.npz: samples: 500 samples" in job.error
    assert QuarantinedRecord.objects.filter(kind="capture").count() == 1
    with pytest.raises(ValueError, match="spec.capture keys"):
        jobs.create_file_job(uploaded_file=SimpleUploadedFile("x.capture.npz", content), spec={"capture": {"colour": "red"}})


def test_watched_folder_stores_captures_and_rejects_bad_ones(plant, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "de-1000.capture.npz").write_bytes(npz_bytes(waveform(), captured_at="2026-03-01T10:00:00+00:00", point="DE"))
    rows = "\n".join(f"{v:.5f}" for v in waveform(seed=3)[:8192])
    (inbox / "nde-1000.capture.csv").write_text(f"# captured_at: 2026-03-01T10:00:00Z\n# point: NDE\nvalue\n{rows}\n")
    nan = waveform()
    nan[100] = np.nan
    (inbox / "bad.capture.npz").write_bytes(npz_bytes(nan, captured_at="2026-03-01T10:10:00+00:00", point="DE"))
    (inbox / "junk.capture.csv").write_text("a,b,c\n1,2,3\n")
    (inbox / "readings.csv").write_text("ts,P-101.VIB\n2026-03-01T00:00:00Z,2.5\n")
    folder = HistorianFolderSource("vib", DatabaseSink(channel="file_folder:vib"), directory=inbox, spec=FileSpec(), settle_s=0,
                                   capture_defaults={"equipment": "P-101", "sample_rate_hz": 25600, "unit": "g"})
    assert folder.scan() == 3  # two captures and the readings file
    stored = {c.point.name: c for c in WaveformCapture.objects.all()}
    assert set(stored) == {"DE", "NDE"} and stored["NDE"].n_samples == 8192 and stored["DE"].source == "folder"
    assert Reading.objects.count() == 1
    assert (inbox / "done" / "de-1000.capture.npz").exists() and (inbox / "rejected" / "bad.capture.npz").exists()
    assert "NaN" in (inbox / "rejected" / "bad.capture.npz.reason.txt").read_text()
    assert "two (time,value), got 3" in (inbox / "rejected" / "junk.capture.csv.reason.txt").read_text()
    assert QuarantinedRecord.objects.filter(kind="capture", channel="file_folder:vib").count() == 1  # the NaN one; junk is quarantined by the connector
    assert any(q.origin == "junk.capture.csv" for q in folder.quarantined)


def test_folder_config_refuses_unknown_capture_defaults(tmp_path, settings):
    settings.PHM_CONNECTOR_ROOTS = [str(tmp_path)]
    from connectors.logs import MemoryOffsetStore
    from connectors.sink import MemorySink

    config = {"directory": str(tmp_path / "in"), "spec": {}, "capture_defaults": {"equipment": "P-101", "colour": "red"}}
    with pytest.raises(ConfigError, match="unknown: colour"):
        build_connector(name="v", kind="file_folder", config=config, sink=MemorySink(), offsets=MemoryOffsetStore(), roots=[tmp_path])
