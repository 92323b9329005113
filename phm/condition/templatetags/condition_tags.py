"""``{% vibration_section %}``: the equipment page's Vibration section (the page's one include line
renders it; the equipment view needs no change)."""

from __future__ import annotations

from django import template

from phm.condition import charts, selectors, spectra
from phm.condition.models import WaveformUnit
from phm.dashboard.roles import ENGINEER, has_role

register = template.Library()


@register.inclusion_tag("condition/_vibration_panel.html", takes_context=True)
def vibration_section(context) -> dict:
    from phm.dashboard.views import with_csp_nonce

    request = context["request"]
    equipment = context["equipment"]
    selection = selectors.select_capture(equipment=equipment, capture_id=request.GET.get("capture"), point_name=request.GET.get("point"))
    out = {"equipment": equipment, "selection": selection, "may_upload": has_role(request.user, ENGINEER), "range_key": context.get("range_key"),
           "csrf_token": context.get("csrf_token"), "units": WaveformUnit.values}
    capture = selection.capture
    if capture is None:
        return out
    analysis = spectra.capture_analysis(capture)
    unit = capture.get_unit_display()
    nonce = lambda html: with_csp_nonce(html, request)  # noqa: E731
    out.update({
        "analysis": analysis,
        "waveform_chart": nonce(charts.waveform_chart(analysis, unit)),
        "spectrum_chart": nonce(charts.spectrum_chart(analysis, capture.unit)),
        "envelope_chart": nonce(charts.envelope_chart(analysis, capture.unit)),
        "trend_chart": nonce(charts.trend_chart(selection.trend, analysis["severity"])),
    })
    return out
