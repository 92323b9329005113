"""File ingestion jobs: queue a stored file, then stream it into the readings table in chunks,
recording progress on the job row after every chunk (the dashboard and API read it)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from phm.telemetry import services
from phm.telemetry.models import FileIngestJob, JobStatus, QuarantinedRecord, RecordKind
from phm.redaction import job_error
from phm.uploads import UploadTooLarge, check_upload_size

log = logging.getLogger(__name__)


def create_file_job(*, uploaded_file, spec: dict, user=None, job: FileIngestJob | None = None) -> FileIngestJob:
    """Store the upload and a queued job (``job``: an unsaved instance to fill, as the admin
    passes); the caller enqueues ``ingest_file_job``."""

    name = Path(uploaded_file.name).name
    if is_capture_name(name):
        capture_defaults(spec)  # a vibration capture: its spec is {"capture": {...}} (what the file does not say)
    else:
        file_spec(spec)  # fail now, on the request, if the spec is invalid
    check_upload_size(kind="historian", name=name, size=uploaded_file.size)
    job = job or FileIngestJob()
    job.original_name, job.spec, job.created_by = name[:255], spec, user
    job.file.save(name, uploaded_file, save=False)
    try:
        check_stored_decoded_size(name, job.file.path)
    except UploadTooLarge:
        job.file.delete(save=False)
        raise
    job.bytes_total = job.file.size
    job.save()
    return job


def check_stored_decoded_size(name: str, path: str | Path) -> None:
    """UploadTooLarge when the file's data decodes past ``PHM_UPLOAD_MAX_DECODED_BYTES``, read from
    its headers only (a small .npz can declare gigabytes of arrays); an unreadable file passes:
    the worker reports it on the job row, as for any other format error."""
    from connectors.files import FileFormatError, FileTooLarge, check_decoded_size

    try:
        check_decoded_size(path, settings.PHM_UPLOAD_MAX_DECODED_BYTES)
    except FileTooLarge as exc:
        raise UploadTooLarge(f"{name}: {exc.args[0].split(' (file ')[0]} (PHM_UPLOAD_MAX_DECODED_BYTES)") from None
    except FileFormatError:
        pass


def check_upload_decoded_size(uploaded_file) -> None:
    """:func:`check_stored_decoded_size` for an upload not stored yet (the admin form checks it
    before anything is saved): Django keeps large uploads in a temporary file with the upload's
    extension; a small one is copied to one."""
    import tempfile

    name = Path(uploaded_file.name).name
    if hasattr(uploaded_file, "temporary_file_path"):
        check_stored_decoded_size(name, uploaded_file.temporary_file_path())
        return
    with tempfile.NamedTemporaryFile(suffix=Path(name).suffix) as copy:
        for chunk in uploaded_file.chunks():
            copy.write(chunk)
        copy.flush()
        check_stored_decoded_size(name, copy.name)
    uploaded_file.seek(0)


def enqueue_file_job(job: FileIngestJob) -> None:
    from phm.telemetry.tasks import ingest_file

    transaction.on_commit(lambda: ingest_file.delay(job.pk))


def run_file_job(*, job_id: int, using: str = "default") -> FileIngestJob:
    """Claim a queued job (a conditional update, so two workers never run the same job) and ingest it."""
    from connectors.files import iter_reading_batches

    claimed = FileIngestJob.objects.using(using).filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started_at=timezone.now()
    )
    job = FileIngestJob.objects.using(using).get(pk=job_id)
    if not claimed:
        log.info("file job %s is %s already; nothing to do", job_id, job.status)
        return job
    channel = f"file:{job.original_name}"[:200]
    if is_capture_name(job.original_name):
        return _run_capture_job(job=job, channel=channel, using=using)
    try:
        spec = file_spec(job.spec)
        for batch in iter_reading_batches(Path(job.file.path), spec, max_decoded_bytes=settings.PHM_UPLOAD_MAX_DECODED_BYTES):
            result = services.ingest_readings(readings=batch.readings, channel=channel, using=using)
            if batch.rejections:
                QuarantinedRecord.objects.using(using).bulk_create(
                    QuarantinedRecord(kind=RecordKind.FILE_ROW, channel=channel, batch_index=r.index, payload={"row": r.index}, error=r.error)
                    for r in batch.rejections
                )
            FileIngestJob.objects.using(using).filter(pk=job_id).update(
                bytes_done=batch.bytes_done,
                rows_done=batch.rows_done,
                accepted=F("accepted") + result.accepted,
                duplicate=F("duplicate") + result.duplicate,
                rejected=F("rejected") + result.rejected + len(batch.rejections),
            )
    except Exception as exc:  # the job row is the record of what went wrong; re-raise for the worker log
        FileIngestJob.objects.using(using).filter(pk=job_id).update(
            status=JobStatus.FAILED, error=job_error(exc), finished_at=timezone.now()
        )
        raise
    FileIngestJob.objects.using(using).filter(pk=job_id).update(
        status=JobStatus.SUCCEEDED, bytes_done=F("bytes_total"), finished_at=timezone.now()
    )
    return FileIngestJob.objects.using(using).get(pk=job_id)


def file_spec(spec: object):
    """A FileSpec from a job's JSON; ValueError/TypeError name what is wrong (unknown fields,
    bad values)."""
    from connectors.files import FileSpec

    if not isinstance(spec, dict):
        raise ValueError("spec must be a JSON object")
    return FileSpec.from_dict(spec)


# --- vibration capture files (*.capture.npz / *.capture.csv): one capture, not readings ----------


def is_capture_name(name: str) -> bool:
    from connectors.waveforms import is_capture_file

    return is_capture_file(name)


def capture_defaults(spec: object) -> dict:
    """The ``{"capture": {...}}`` spec of a capture file; ValueError naming an unknown key."""
    from phm.sources.registry import CAPTURE_DEFAULT_KEYS

    if not isinstance(spec, dict) or set(spec) - {"capture"}:
        raise ValueError('a capture file (*.capture.npz / *.capture.csv) takes spec {"capture": {"equipment", "point", ...}} only')
    defaults = spec.get("capture", {})
    if not isinstance(defaults, dict) or set(defaults) - CAPTURE_DEFAULT_KEYS:
        raise ValueError(f"spec.capture keys must be among {', '.join(sorted(CAPTURE_DEFAULT_KEYS))}")
    return defaults


def _run_capture_job(*, job: FileIngestJob, channel: str, using: str) -> FileIngestJob:
    from connectors.files import FileFormatError
    from connectors.waveforms import read_capture_file
    from phm.condition.captures import CaptureRejected, ingest_capture, reject_unparsed
    from phm.condition.models import CaptureSource

    defaults = capture_defaults(job.spec)
    outcome = None
    try:
        record = read_capture_file(Path(job.file.path), array=defaults.get("array"), defaults={k: v for k, v in defaults.items() if k != "array"},
                                   max_decoded_bytes=settings.PHM_UPLOAD_MAX_CAPTURE_BYTES)
        record = replace(record, origin=job.original_name)  # the uploaded name, not the stored one
        outcome = ingest_capture(record=record, source=CaptureSource.CONNECTOR, channel=channel, using=using)
    except FileFormatError as exc:
        error = CaptureRejected(str(exc).replace(f" (file {Path(job.file.path).name})", ""), field=exc.column or "file", origin=job.original_name)
        reject_unparsed(error=error, channel=channel, metadata=defaults, using=using)
        message = str(error)
    except CaptureRejected as exc:  # quarantined by the service
        message = str(exc)
    else:
        message = ""
    FileIngestJob.objects.using(using).filter(pk=job.pk).update(
        status=JobStatus.SUCCEEDED if outcome else JobStatus.FAILED, error=message[:2000], rows_done=1 if outcome else 0,
        accepted=int(bool(outcome and outcome.created)), duplicate=int(bool(outcome and not outcome.created)), rejected=0 if outcome else 1,
        bytes_done=F("bytes_total"), finished_at=timezone.now(),
    )
    return FileIngestJob.objects.using(using).get(pk=job.pk)
