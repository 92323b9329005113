"""Read queries of the Vibration section: which capture to show, its neighbours, the RMS trend."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from phm.assets.models import Equipment, MeasurementPoint
from phm.condition.models import WaveformCapture

#: Captures listed in the page's time picker, per point.
PICKER_CAPTURES = 100
#: The trend covers this long before the newest capture.
TREND_SPAN = timedelta(days=30)
#: At most this many trend points (newest kept) per page.
TREND_MAX = 3000


@dataclass
class VibrationSelection:
    points: list[MeasurementPoint]
    point: MeasurementPoint | None = None
    capture: WaveformCapture | None = None
    choices: list[WaveformCapture] = field(default_factory=list)  # captures of the point, newest first
    trend: list[WaveformCapture] = field(default_factory=list)


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 19 else None


def select_capture(*, equipment: Equipment, capture_id: str | None = None, point_name: str | None = None) -> VibrationSelection:
    """The capture asked for (by id, on this equipment), else the latest of the point asked for,
    else the latest of the equipment."""
    captures = WaveformCapture.objects.filter(equipment=equipment).select_related("point", "equipment")
    selection = VibrationSelection(points=list(equipment.measurement_points.order_by("name")))
    wanted = _int(capture_id)
    capture = captures.filter(pk=wanted).first() if wanted is not None else None
    if capture is not None and point_name and capture.point.name != point_name:
        capture = None  # the picker sends both: a newly chosen point wins over the previous point's capture
    if capture is None and point_name:
        capture = captures.filter(point__name=point_name).order_by("-captured_at").first()
    if capture is None:
        capture = captures.order_by("-captured_at").first()
    if capture is None:
        return selection
    selection.capture, selection.point = capture, capture.point
    light = captures.defer("samples")
    selection.choices = list(light.filter(point=capture.point).order_by("-captured_at")[:PICKER_CAPTURES])
    newest = captures.order_by("-captured_at").values_list("captured_at", flat=True).first()
    recent = light.filter(captured_at__gte=newest - TREND_SPAN, velocity_rms_mm_s__isnull=False).order_by("-captured_at")[:TREND_MAX]
    selection.trend = sorted(recent, key=lambda c: c.captured_at)
    return selection
