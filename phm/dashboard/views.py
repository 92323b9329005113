"""Operator pages: plant overview and equipment detail (server-side downsampled Plotly charts)."""

from __future__ import annotations

from datetime import timedelta

import plotly.graph_objects as go
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from phm.assets.models import Equipment, Site
from phm.dashboard import selectors
from phm.telemetry.selectors import sensor_series

RANGES = {"1h": timedelta(hours=1), "6h": timedelta(hours=6), "24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}


@login_required
@require_GET
def plant_overview(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    sites = Site.objects.prefetch_related("areas__lines__equipment")
    return render(request, "dashboard/overview.html", {"sites": sites, "health": selectors.equipment_health(now=now), "now": now})


@login_required
@require_GET
def equipment_detail(request: HttpRequest, tag: str) -> HttpResponse:
    equipment = get_object_or_404(Equipment.objects.select_related("line__area__site"), tag=tag)
    range_key = request.GET.get("range", "6h") if request.GET.get("range") in RANGES else "6h"
    end = timezone.now()
    start = end - RANGES[range_key]
    charts = []
    for sensor in equipment.sensors.filter(enabled=True):
        series = sensor_series(sensor=sensor, start=start, end=end, max_points=600)
        charts.append({"sensor": sensor, "html": _chart_html(series), "points": len(series.points)})
    return render(
        request, "dashboard/equipment.html",
        {"equipment": equipment, "charts": charts, "range_key": range_key, "ranges": list(RANGES), "logs": selectors.recent_logs(equipment=equipment)},
    )


def _chart_html(series) -> str:
    times = [p.ts for p in series.points]
    figure = go.Figure()
    if series.downsampled:
        figure.add_trace(go.Scatter(x=times, y=[p.max for p in series.points], line={"width": 0}, showlegend=False, hoverinfo="skip"))
        figure.add_trace(go.Scatter(x=times, y=[p.min for p in series.points], fill="tonexty", line={"width": 0}, fillcolor="rgba(31,119,180,0.2)", name="min–max"))
    figure.add_trace(go.Scatter(x=times, y=[p.value for p in series.points], name="mean" if series.downsampled else "value", line={"width": 1.5, "color": "#1f77b4"}))
    figure.update_layout(height=220, margin={"l": 50, "r": 10, "t": 10, "b": 30}, yaxis_title=series.unit, showlegend=False, template="plotly_white")
    return figure.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})


@require_GET
@cache_control(max_age=86400, public=True)
def plotly_js(request: HttpRequest) -> HttpResponse:
    """plotly.js from the installed plotly package: no CDN at run time."""
    from plotly.offline import get_plotlyjs

    return HttpResponse(get_plotlyjs(), content_type="application/javascript")
