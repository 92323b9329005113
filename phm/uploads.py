"""Size limits for uploads, one per kind, from settings (documented in README "Security and limits").

- ``historian``: files queued for ingestion (CSV, Parquet, npz): ``PHM_UPLOAD_MAX_HISTORIAN_BYTES``
  for the upload, ``PHM_UPLOAD_MAX_DECODED_BYTES`` for what its data decodes to (checked from
  headers before the worker loads anything).
- ``capture``: vibration capture files (``.npz``/CSV, one waveform): ``PHM_UPLOAD_MAX_CAPTURE_BYTES``,
  also the bound on what an ``.npz`` declares it decodes to.
- ``document``: knowledge-base files: ``PHM_KB_MAX_UPLOAD_BYTES``; pages, extracted text and
  chunks are bounded by ``PHM_KB_MAX_PAGES`` / ``PHM_KB_MAX_TEXT_CHARS`` / ``PHM_KB_MAX_CHUNKS``.

:class:`RequestSizeMiddleware` refuses any request whose declared body is larger than the largest
upload limit (``PHM_MAX_REQUEST_BYTES``) with 413 before Django spools it to disk.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

SETTING_OF_KIND = {
    "historian": "PHM_UPLOAD_MAX_HISTORIAN_BYTES",
    "document": "PHM_KB_MAX_UPLOAD_BYTES",
    "capture": "PHM_UPLOAD_MAX_CAPTURE_BYTES",
}


class UploadTooLarge(ValueError):
    """An upload (or what it decodes to) is over its limit; the message names the limit's setting."""


def upload_limit(kind: str) -> int:
    if kind not in SETTING_OF_KIND:
        raise ValueError(f"unknown upload kind {kind!r}: one of {', '.join(SETTING_OF_KIND)}")
    return int(getattr(settings, SETTING_OF_KIND[kind]))


def check_upload_size(*, kind: str, name: str, size: int) -> None:
    limit = upload_limit(kind)
    if size > limit:
        raise UploadTooLarge(f"{name}: {size:,} bytes is over the {limit:,} byte limit for {kind} uploads ({SETTING_OF_KIND[kind]})")


class RequestSizeMiddleware:
    """413 for a request body declared larger than ``PHM_MAX_REQUEST_BYTES``, before it is read."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        limit = settings.PHM_MAX_REQUEST_BYTES
        if declared > limit:
            message = f"request body of {declared:,} bytes is over the {limit:,} byte limit (PHM_MAX_REQUEST_BYTES)"
            if request.path.startswith("/api/"):
                return JsonResponse({"error": message}, status=413)
            return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
