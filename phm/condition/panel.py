"""The equipment page's health and RUL panel: the health trend and the RUL estimates with their
interval against the planning lead time (server-side Plotly, the page's CSP nonce)."""

from __future__ import annotations

import plotly.graph_objects as go
from django.http import HttpRequest
from plotly.subplots import make_subplots

from phm.assets.models import Equipment
from phm.condition import rul
from phm.condition.api_rul import estimate_sentence
from phm.condition.models import HealthPoint, RULEstimate

#: Points per chart: enough for a 1,000-pixel-wide plot.
MAX_POINTS = 600


def _thin(rows: list, limit: int = MAX_POINTS) -> list:
    step = max(1, -(-len(rows) // limit))
    thinned = rows[::step]
    return thinned if not rows or thinned[-1] is rows[-1] else [*thinned, rows[-1]]


def panel_context(*, equipment: Equipment, request: HttpRequest) -> dict:
    from phm.dashboard.views import with_csp_nonce

    health = _thin(list(HealthPoint.objects.filter(equipment=equipment).order_by("ts")))
    estimates = _thin(list(RULEstimate.objects.filter(equipment=equipment).select_related("version").order_by("as_of", "id")))
    latest = estimates[-1] if estimates else None
    outcome = None if latest else rul.estimate_rul(equipment=equipment)
    if outcome is not None and outcome.estimate is not None:
        latest, estimates = outcome.estimate, [outcome.estimate]
    chart = _chart(equipment, health, estimates) if health or estimates else ""
    return {
        "equipment": equipment,
        "latest": latest,
        "sentence": estimate_sentence(latest) if latest else "",
        "reason": "" if latest else outcome.message,
        "below_lead_time": bool(latest and latest.lower_days < equipment.planning_lead_time_days),
        "health_latest": health[-1] if health else None,
        "chart": with_csp_nonce(chart, request) if chart else "",
    }


def _chart(equipment: Equipment, health: list[HealthPoint], estimates: list[RULEstimate]) -> str:
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                           subplot_titles=("Health indicator (1 = like the start of the run)", "Remaining useful life, days"))
    if health:
        figure.add_trace(go.Scatter(x=[p.ts for p in health], y=[p.health for p in health], name="health", line={"color": "#1f77b4"}), row=1, col=1)
    if estimates:
        times = [e.as_of for e in estimates]
        level = f"{estimates[-1].level:.0%} interval"
        if len(estimates) > 1:  # a band over time; a single estimate shows as its error bar
            figure.add_trace(go.Scatter(x=times, y=[e.upper_days for e in estimates], mode="lines", line={"width": 0}, showlegend=False,
                                        hoverinfo="skip"), row=2, col=1)
            figure.add_trace(go.Scatter(x=times, y=[e.lower_days for e in estimates], mode="lines", fill="tonexty", line={"width": 0},
                                        fillcolor="rgba(31,119,180,0.2)", name=level), row=2, col=1)
        figure.add_trace(go.Scatter(
            x=times, y=[e.rul_days for e in estimates], mode="lines+markers", name=f"RUL with {level}", line={"color": "#1f77b4"},
            error_y={"type": "data", "symmetric": False, "array": [e.upper_days - e.rul_days for e in estimates],
                     "arrayminus": [e.rul_days - e.lower_days for e in estimates], "color": "#1f77b4"},
        ), row=2, col=1)
        figure.add_hline(y=equipment.planning_lead_time_days, line={"color": "#b42318", "dash": "dash"}, row=2, col=1,
                         annotation_text=f"planning lead time {equipment.planning_lead_time_days:g} d")
    figure.update_yaxes(range=[0, 1.05], row=1, col=1)
    figure.update_layout(height=420, margin={"l": 50, "r": 10, "t": 30, "b": 30}, template="plotly_white", legend={"orientation": "h", "y": -0.12})
    return figure.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})
