"""Operator and engineer pages: plant overview, equipment detail (server-side downsampled Plotly
charts), alarm console, assistant chat, models, connectors. Every view checks the role."""

from __future__ import annotations

import re
from datetime import timedelta

import plotly.graph_objects as go
from django.contrib import messages
from django.db.models import Prefetch
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_POST

from phm.alarms import selectors as alarm_selectors
from phm.alarms.models import OPEN_STATES, Alarm, AlarmState, SeverityBand
from phm.analytics import training
from phm.analytics.models import DetectorConfig, DetectorScope, ModelVersion, TrainingJob
from phm.assets.models import Area, Equipment, Site
from phm.condition import rul as rul_estimates
from phm.dashboard import selectors
from phm.dashboard.roles import ENGINEER, OPERATOR, has_role, role_required
from phm.sources.models import ConnectorDefinition
from phm.telemetry.selectors import sensor_series

RANGES = {"1h": timedelta(hours=1), "6h": timedelta(hours=6), "24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}
#: Chart points per sensor: enough for a 1,000-pixel-wide plot, small enough to render fast.
CHART_POINTS = 600
SHELVE_CHOICES_MIN = (15, 60, 240, 480)
BAND_ORDER = [SeverityBand.URGENT, SeverityBand.HIGH, SeverityBand.MEDIUM, SeverityBand.LOW]


@role_required(OPERATOR)
@require_GET
def plant_overview(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    sites = Site.objects.prefetch_related(
        Prefetch("areas", queryset=Area.objects.prefetch_related("lines__equipment")),
    )
    context = {"sites": sites, "health": selectors.equipment_health(now=now), "area_counts": selectors.area_alarm_counts(), "now": now,
               "rul": rul_estimates.latest_by_equipment()}
    return render(request, "dashboard/overview.html", context)


@role_required(OPERATOR)
@require_GET
def equipment_detail(request: HttpRequest, tag: str) -> HttpResponse:
    equipment = get_object_or_404(Equipment.objects.select_related("line__area__site"), tag=tag)
    range_key = request.GET.get("range") if request.GET.get("range") in RANGES else "1h"
    end = timezone.now()
    start = end - RANGES[range_key]
    alarms = selectors.alarms_in_range(equipment=equipment, start=start, end=end)
    charts = []
    for sensor in equipment.sensors.filter(enabled=True):
        series = sensor_series(sensor=sensor, start=start, end=end, max_points=CHART_POINTS)
        charts.append({"sensor": sensor, "html": with_csp_nonce(_sensor_chart(series, alarms, start, end), request), "points": len(series.points)})
    bands = selectors.score_bands(equipment=equipment, start=start, end=end, max_points=CHART_POINTS)
    context = {
        "equipment": equipment, "charts": charts, "range_key": range_key, "ranges": list(RANGES),
        "score_chart": with_csp_nonce(_score_chart(bands, alarms, start, end), request) if bands else "", "alarms": alarms,
        "templates": selectors.log_template_counts(equipment=equipment, start=start, end=end)[:30],
        "logs": selectors.recent_logs(equipment=equipment, limit=30),
        "images": selectors.latest_images(equipment=equipment),
        "dv": selectors.diagnosis_view(selectors.latest_diagnosis(equipment=equipment)),
    }
    return render(request, "dashboard/equipment.html", context)


_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)")


def with_csp_nonce(html: str, request: HttpRequest) -> str:
    """Plotly writes each chart's inline ``<script>``; give it this response's CSP nonce so the
    policy can forbid every other inline script."""
    return _INLINE_SCRIPT.sub(f'<script nonce="{request.csp_nonce}"', html)


def _alarm_markers(figure: go.Figure, alarms: list[Alarm]) -> None:
    # Vertical lines at each alarm's raise time, labelled with its band (text, not colour alone).
    for alarm in alarms:
        figure.add_vline(x=alarm.raised_at, line={"color": "#b42318", "width": 1, "dash": "dot"})


def _sensor_chart(series, alarms: list[Alarm], start, end) -> str:
    times = [p.ts for p in series.points]
    figure = go.Figure()
    if series.downsampled:
        figure.add_trace(go.Scatter(x=times, y=[p.max for p in series.points], line={"width": 0}, showlegend=False, hoverinfo="skip"))
        figure.add_trace(go.Scatter(x=times, y=[p.min for p in series.points], fill="tonexty", line={"width": 0}, fillcolor="rgba(31,119,180,0.2)", name="min–max"))
    figure.add_trace(go.Scatter(x=times, y=[p.value for p in series.points], name="mean" if series.downsampled else "value", line={"width": 1.5, "color": "#1f77b4"}))
    _alarm_markers(figure, alarms)
    figure.update_layout(height=220, margin={"l": 50, "r": 10, "t": 10, "b": 30}, yaxis_title=series.unit, showlegend=False, template="plotly_white")
    figure.update_xaxes(range=[start, end])  # the chosen range, so gaps in the data show as gaps
    return figure.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def _score_chart(bands: list[selectors.ScoreBand], alarms: list[Alarm], start, end) -> str:
    figure = go.Figure()
    for band in bands:
        figure.add_trace(go.Scatter(x=band.times, y=band.scores, name=f"{band.detector} score", line={"width": 1.5}))
        figure.add_trace(go.Scatter(x=band.times, y=band.thresholds, name=f"{band.detector} threshold", line={"width": 1, "dash": "dash", "color": "#b42318"}))
    _alarm_markers(figure, alarms)
    figure.update_layout(height=240, margin={"l": 50, "r": 10, "t": 10, "b": 30}, yaxis_title="anomaly score", template="plotly_white",
                         legend={"orientation": "h", "y": -0.25})
    figure.update_xaxes(range=[start, end])
    return figure.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})


# --- alarm console ------------------------------------------------------------------------------


def _console_alarms(request: HttpRequest):
    """Open alarms (or all with ?all=1), most severe first then newest, with the page's filters."""
    query = alarm_selectors.alarms(open_only=request.GET.get("all") != "1", equipment_tag=request.GET.get("equipment") or None)
    band = request.GET.get("band")
    if band in SeverityBand.values:
        low = {SeverityBand.LOW: 1, SeverityBand.MEDIUM: 251, SeverityBand.HIGH: 501, SeverityBand.URGENT: 751}[band]
        query = query.filter(severity__gte=low, severity__lte=low + 249)
    state = request.GET.get("state")
    if state in AlarmState.values:
        query = query.filter(state=state)
    return query.order_by("-severity", "-raised_at")[:300]


def _with_diagnoses(alarms) -> list[Alarm]:
    """The alarms with their newest diagnosis as ``alarm.diagnosis`` (None while there is none)."""
    alarms = list(alarms)
    diagnoses = selectors.alarm_diagnoses(alarm_ids=[a.pk for a in alarms])
    for alarm in alarms:
        alarm.diagnosis = diagnoses.get(alarm.pk)
    return alarms


@role_required(OPERATOR)
@require_GET
def alarm_console(request: HttpRequest) -> HttpResponse:
    context = {
        "alarms": _with_diagnoses(_console_alarms(request)), "filters": request.GET, "bands": BAND_ORDER, "states": AlarmState.choices,
        "equipment_tags": Equipment.objects.order_by("tag").values_list("tag", flat=True), "shelve_choices": SHELVE_CHOICES_MIN,
        "open_states": OPEN_STATES,
    }
    return render(request, "dashboard/console.html", context)


@role_required(OPERATOR)
@require_GET
def alarm_console_rows(request: HttpRequest) -> HttpResponse:
    """The table body alone: htmx swaps it in every few seconds."""
    return render(request, "dashboard/_console_rows.html", {"alarms": _with_diagnoses(_console_alarms(request)), "shelve_choices": SHELVE_CHOICES_MIN})


@role_required(OPERATOR)
@require_GET
def alarm_journal(request: HttpRequest, alarm_id: int) -> HttpResponse:
    alarm = get_object_or_404(alarm_selectors.alarms(), pk=alarm_id)
    return render(request, "dashboard/_journal.html", {"alarm": alarm, "journal": alarm_selectors.journal(alarm=alarm)})


# --- assistant chat -----------------------------------------------------------------------------


@role_required(OPERATOR)
@require_GET
def chat(request: HttpRequest) -> HttpResponse:
    """The chat page; ``?alarm=<id>`` pre-fills the question and equipment from that alarm."""
    question, equipment = "", request.GET.get("equipment", "")
    alarm_id = request.GET.get("alarm", "")
    if alarm_id.isdigit():
        alarm = Alarm.objects.select_related("equipment").filter(pk=int(alarm_id)).first()
        if alarm is not None:
            equipment = alarm.equipment.tag
            message = alarm.message.rstrip()
            if message and message[-1] not in ".!?":
                message += "."
            question = (f"Alarm on {alarm.equipment.tag} ({alarm.source}, severity {alarm.severity} {alarm.band}): {message} "
                        f"What are the likely causes and what should I check?")
    return render(request, "dashboard/chat.html", {"question": question, "equipment": equipment})


# --- engineer pages -----------------------------------------------------------------------------


@role_required(ENGINEER)
@require_GET
def models_page(request: HttpRequest) -> HttpResponse:
    detectors = (DetectorConfig.objects.select_related("equipment").prefetch_related("sensors")
                 .prefetch_related(Prefetch("versions", queryset=ModelVersion.objects.order_by("-version")))
                 .order_by("equipment__tag", "name"))
    jobs = TrainingJob.objects.select_related("config__equipment").order_by("-created_at")[:30]
    from models.detectors import METHODS

    return render(request, "dashboard/models.html", {
        "detectors": detectors, "jobs": jobs, "equipment": Equipment.objects.order_by("tag"), "methods": METHODS,
        "scopes": DetectorScope.choices,
    })


@role_required(ENGINEER)
@require_POST
def detector_create(request: HttpRequest) -> HttpResponse:
    """Create a detector on every enabled sensor of the chosen equipment, validated by the API's
    serializer (same rules, same errors); per unit or fleet scope."""
    from phm.analytics.serializers import DetectorConfigSerializer

    tag = request.POST.get("equipment", "")
    equipment = Equipment.objects.filter(tag=tag).first()
    if equipment is None:
        messages.error(request, f"unknown equipment {tag!r}")
        return redirect("dashboard:models")
    data = {
        "equipment": tag, "name": request.POST.get("name", ""), "method": request.POST.get("method", ""),
        "scope": request.POST.get("scope", DetectorScope.UNIT), "fleet_group": request.POST.get("fleet_group", ""),
        "sensors": list(equipment.sensors.filter(enabled=True).order_by("tag").values_list("tag", flat=True)), "params": {},
    }
    serializer = DetectorConfigSerializer(data=data)
    if serializer.is_valid():
        config = serializer.save()
        messages.success(request, f"{tag}/{config.name}: created ({config.method}, {config.scope}); train it below")
    else:
        problems = "; ".join(f"{field}: {' '.join(str(e) for e in errors)}" for field, errors in serializer.errors.items())
        messages.error(request, f"{tag}: {problems}")
    return redirect("dashboard:models")


@role_required(ENGINEER)
@require_GET
def training_jobs_rows(request: HttpRequest) -> HttpResponse:
    jobs = TrainingJob.objects.select_related("config__equipment").order_by("-created_at")[:30]
    return render(request, "dashboard/_jobs_rows.html", {"jobs": jobs})


@role_required(ENGINEER)
@require_POST
def detector_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """activate a version, roll back, or start training; the same services as the API."""
    config = get_object_or_404(DetectorConfig, pk=pk)
    try:
        if action == "activate":
            version = get_object_or_404(ModelVersion, config=config, version=int(request.POST.get("version", "0")))
            training.activate_version(version=version)
            messages.success(request, f"{config.equipment.tag}/{config.name}: version {version.version} is active")
        elif action == "rollback":
            version = training.rollback(config=config)
            messages.success(request, f"{config.equipment.tag}/{config.name}: rolled back to version {version.version}")
        elif action == "train":
            start, end = _train_range(request)
            job = training.start_training(config=config, train_start=start, train_end=end, activate=request.POST.get("activate") == "on", user=request.user)
            messages.success(request, f"{config.equipment.tag}/{config.name}: training job {job.pk} queued")
        else:
            messages.error(request, f"unknown action {action!r}")
    except (training.TrainingError, ValueError) as exc:
        messages.error(request, f"{config.equipment.tag}/{config.name}: {exc}")
    return redirect("dashboard:models")


def _train_range(request: HttpRequest):
    """Training window from the form: explicit start/end, or the last ``hours`` hours."""
    start, end = parse_datetime(request.POST.get("start", "") or ""), parse_datetime(request.POST.get("end", "") or "")
    if start and end:
        return start, end
    hours = float(request.POST.get("hours") or 24)
    if hours <= 0:
        raise ValueError(f"hours must be positive, got {hours}")
    end = timezone.now()
    return end - timedelta(hours=hours), end


@role_required(ENGINEER)
@require_GET
def connectors_page(request: HttpRequest) -> HttpResponse:
    connectors = ConnectorDefinition.objects.select_related("status").order_by("name")
    return render(request, "dashboard/connectors.html", {"connectors": connectors, "now": timezone.now()})


@require_GET
@cache_control(max_age=86400, public=True)
def plotly_js(request: HttpRequest) -> HttpResponse:
    """plotly.js from the installed plotly package: no CDN at run time."""
    from plotly.offline import get_plotlyjs

    return HttpResponse(get_plotlyjs(), content_type="application/javascript")


#: Media sub-folder of raw historian uploads (``FileIngestJob.file`` upload_to).
RAW_UPLOADS = "uploads/"


@require_GET
@role_required(OPERATOR)
def media_file(request: HttpRequest, path: str) -> FileResponse:
    """Uploaded files (inspection images and their thumbnails) for signed-in users only: they are
    plant data, so they are not left to a public static route, and this works with DEBUG off."""
    if "\x00" in path:  # the OS cannot name such a file; resolve() would raise ValueError (500)
        raise Http404("no such file")
    if path.startswith(RAW_UPLOADS) and not has_role(request.user, ENGINEER):
        # Raw historian exports (telemetry.FileIngestJob.file) are the plant's full history, not
        # something an operator needs; the ingested readings are on the equipment pages.
        raise PermissionDenied("raw historian uploads need the engineer role")
    root = Path(settings.MEDIA_ROOT).resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise Http404("no such file")
    response = FileResponse(target.open("rb"))
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response
