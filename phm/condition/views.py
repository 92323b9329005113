"""Capture upload from the equipment page (engineer); the section itself is rendered by the
``vibration_section`` template tag on the equipment page."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from phm.assets.models import Equipment
from phm.condition import captures
from phm.condition.models import CaptureSource
from phm.dashboard.roles import ENGINEER, role_required
from phm.uploads import UploadTooLarge, check_upload_size

FORM_FIELDS = ("point", "captured_at", "sample_rate_hz", "unit", "speed_rpm", "label", "array")


@role_required(ENGINEER)
@require_POST
def capture_upload(request: HttpRequest, tag: str) -> HttpResponse:
    equipment = get_object_or_404(Equipment, tag=tag)
    page = reverse("dashboard:equipment", args=[equipment.tag])
    upload = request.FILES.get("file")
    if upload is None:
        messages.error(request, "choose a capture file (.npz or .csv)")
        return redirect(page + "#vibration")
    fields = {name: request.POST.get(name, "").strip() for name in FORM_FIELDS if request.POST.get(name, "").strip()}
    fields["equipment"] = equipment.tag  # the page's equipment, whatever the file says
    channel = f"upload:{upload.name[:150]}"
    try:
        check_upload_size(kind="capture", name=upload.name, size=upload.size)
        record = captures.with_equipment(captures.record_from_file(name=upload.name[:200], content=upload.read(), fields=fields), equipment.tag)
    except UploadTooLarge as exc:
        messages.error(request, str(exc))
        return redirect(page + "#vibration")
    except captures.CaptureRejected as exc:  # the file could not be read: quarantine what the form said
        captures.reject_unparsed(error=exc, channel=channel, metadata=fields)
        messages.error(request, f"capture refused: {exc}")
        return redirect(page + "#vibration")
    try:
        outcome = captures.ingest_capture(record=record, source=CaptureSource.UPLOAD, channel=channel)
    except captures.CaptureRejected as exc:  # quarantined by the service
        messages.error(request, f"capture refused: {exc}")
        return redirect(page + "#vibration")
    capture = outcome.capture
    verb = "stored" if outcome.created else "already stored (same point and time): nothing changed"
    messages.success(request, f"{upload.name}: {capture.point.name} at {capture.captured_at:%Y-%m-%d %H:%M:%S} {verb}")
    return redirect(f"{page}?capture={capture.pk}#vibration")
