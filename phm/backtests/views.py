"""Backtest pages: the list with a start form (engineer), and one run with its report and plots
(score vs threshold, known fault periods shaded, alarms, diagnoses). The form calls the same
service as the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import plotly.graph_objects as go
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_POST

from phm.assets.models import Equipment
from phm.backtests import services
from phm.backtests.models import BacktestRun, GroundTruth
from phm.backtests.report import KnownFault
from phm.backtests.summary import report_lines
from phm.backtests.truth import known_faults
from phm.dashboard.roles import ENGINEER, OPERATOR, role_required
from phm.dashboard.views import with_csp_nonce

#: Colours of the fault kinds' shading (the kind is also written on the band: colour is never the only signal).
KIND_COLOURS = {
    "bearing_wear": "rgba(214,39,40,0.15)", "cavitation": "rgba(31,119,180,0.15)", "misalignment": "rgba(148,103,189,0.15)",
    "condenser_fouling": "rgba(44,160,44,0.15)", "sensor_drift": "rgba(255,127,14,0.15)", "stuck_sensor": "rgba(127,127,127,0.2)",
}


@role_required(OPERATOR)
@require_GET
def backtest_list(request: HttpRequest) -> HttpResponse:
    runs = BacktestRun.objects.select_related("diagnoser", "created_by").prefetch_related("equipment")[:50]
    now = timezone.now().replace(second=0, microsecond=0)
    return render(request, "backtests/list.html", {
        "runs": runs, "equipment": Equipment.objects.filter(detectors__isnull=False).distinct().order_by("tag"),
        "ground_truths": GroundTruth.choices,
        "default_start": (now - timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M"), "default_end": now.strftime("%Y-%m-%dT%H:%M"),
    })


def _form_time(value: str, name: str) -> datetime:
    parsed = parse_datetime(value or "")
    if parsed is None:
        raise services.BacktestError(f"{name}: {value!r} is not a date and time")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@role_required(ENGINEER)
@require_POST
def backtest_start(request: HttpRequest) -> HttpResponse:
    try:
        tags = request.POST.getlist("equipment")
        equipment = list(Equipment.objects.filter(tag__in=tags))
        run = services.create_backtest(
            start=_form_time(request.POST.get("start", ""), "start"), end=_form_time(request.POST.get("end", ""), "end"),
            equipment=equipment, diagnose=request.POST.get("diagnose") == "on", name=request.POST.get("name", "")[:120], user=request.user,
            ground_truth=request.POST.get("ground_truth") or GroundTruth.INJECTIONS,
        )
    except services.BacktestError as exc:
        messages.error(request, f"backtest not started: {exc}")
        return redirect("backtests:list")
    messages.success(request, f"backtest {run.pk} queued")
    return redirect("backtests:detail", pk=run.pk)


@role_required(OPERATOR)
@require_GET
def backtest_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(BacktestRun.objects.select_related("diagnoser", "created_by"), pk=pk)
    charts = []
    if run.status == "succeeded":
        alarms = list(run.alarms.select_related("equipment", "config", "fault", "work_order").prefetch_related("diagnoses"))
        for series in run.series.select_related("equipment", "config", "version"):
            faults = known_faults(ground_truth=run.ground_truth, equipment=[series.equipment], start=run.start, end=run.end).faults
            mine = [a for a in alarms if a.config_id == series.config_id]
            # Plotly's inline script needs this response's CSP nonce, or the browser draws no chart.
            charts.append({"series": series, "html": with_csp_nonce(_chart(run, series, faults, mine), request)})
    else:
        alarms = []
    return render(request, "backtests/detail.html", {
        "run": run, "charts": charts, "alarms": alarms[:500], "lines": report_lines(run.report) if run.report else [],
        "progress": list(run.progress.all())[-10:],
    })


def _chart(run: BacktestRun, series, faults: list[KnownFault], alarms) -> str:
    times = [datetime.fromtimestamp(t, UTC) for t in series.times]
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=times, y=series.scores, name="score (max per bucket)", line={"width": 1.2, "color": "#1f77b4"}))
    figure.add_trace(go.Scatter(x=[run.start, run.end], y=[series.threshold] * 2, name="threshold", line={"width": 1, "dash": "dash", "color": "#b42318"}))
    for fault in faults:
        label = f"{fault.kind} {fault.severity:.2g}" if fault.severity is not None else f"{fault.kind} ({fault.reference})"
        figure.add_vrect(x0=max(fault.start, run.start), x1=min(fault.end, run.end), fillcolor=KIND_COLOURS.get(fault.kind, "rgba(0,0,0,0.1)"),
                         line_width=0, annotation_text=label, annotation_position="top left",
                         annotation_font_size=10)
    if alarms:
        figure.add_trace(go.Scatter(
            x=[a.raised_at for a in alarms], y=[a.raise_score for a in alarms], mode="markers", name="alarm raised",
            marker={"symbol": "triangle-up", "size": 10, "color": "#b42318"},
            text=[_diagnosis_text(a) for a in alarms], hovertemplate="%{x}<br>%{text}<extra>alarm</extra>",
        ))
    figure.update_layout(height=280, margin={"l": 50, "r": 10, "t": 25, "b": 30}, yaxis_title="anomaly score", template="plotly_white",
                         legend={"orientation": "h", "y": -0.2})
    figure.update_xaxes(range=[run.start, run.end])
    return figure.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def _diagnosis_text(alarm) -> str:
    parts = [f"+{d.offset_s / 60:.0f} min: {d.fault or d.error[:40]}{f' {d.probability:.0%}' if d.probability is not None else ''}"
             for d in alarm.diagnoses.all()]
    if alarm.fault_id:
        truth = alarm.fault.fault
    elif alarm.work_order_id:
        truth = f"{alarm.work_order.fault} (work order {alarm.work_order.number})"
    else:
        truth = "false alarm"
    return f"truth: {truth}<br>" + "<br>".join(parts)
