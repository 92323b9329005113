"""Plotly figures of the equipment page's Vibration section, built from ``spectra.capture_analysis``
and the velocity RMS trend (HTML fragments; plotly.js is served locally)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import plotly.graph_objects as go

from phm.condition.models import WaveformCapture

DEFECT_STYLE = {"BPFO": "#b42318", "BPFI": "#7a2e98", "BSF": "#027a48", "FTF": "#b54708"}
RUNNING_STYLE = "#475467"
ZONE_COLOURS = {"A/B": "#12b76a", "B/C": "#f79009", "C/D": "#d92d20"}
CONFIG = {"displaylogo": False, "responsive": True}
LAYOUT = {"margin": {"l": 60, "r": 10, "t": 30, "b": 40}, "template": "plotly_white"}


def _html(figure: go.Figure, div_id: str) -> str:
    return figure.to_html(full_html=False, include_plotlyjs=False, config=CONFIG, div_id=div_id)


def waveform_chart(analysis: Mapping, unit: str) -> str:
    figure = go.Figure(go.Scatter(x=analysis["waveform"]["t_s"], y=analysis["waveform"]["value"], line={"width": 1}, name="waveform"))
    figure.update_layout(height=220, title="Waveform", xaxis_title="time (s)", yaxis_title=unit, **LAYOUT)
    return _html(figure, "vib-waveform")


def _running_speed_lines(figure: go.Figure, markers: Mapping, max_hz: float) -> None:
    for k, freq in enumerate(markers["running_speed_hz"], start=1):
        if freq <= max_hz:
            figure.add_vline(x=freq, line={"color": RUNNING_STYLE, "width": 1, "dash": "dot"},
                             annotation_text=f"{k}×", annotation_position="top", annotation_font_size=10)


def spectrum_chart(analysis: Mapping, unit: str) -> str:
    spectrum = analysis["spectrum"]
    figure = go.Figure(go.Scatter(x=spectrum["freq_hz"], y=spectrum["amplitude"], line={"width": 1}, name="amplitude"))
    # Running-speed harmonics matter at the low end; show the first 10 orders' span by default.
    _running_speed_lines(figure, analysis["markers"], spectrum["freq_hz"][-1] if spectrum["freq_hz"] else 0)
    speed = analysis["markers"]["speed_rpm"]
    figure.update_layout(height=260, title="FFT amplitude spectrum (Hann, peak)", xaxis_title="frequency (Hz)", yaxis_title=f"{unit} peak", **LAYOUT)
    if speed:
        figure.update_xaxes(range=[0, min(spectrum["freq_hz"][-1], 12 * speed / 60.0)])
    return _html(figure, "vib-spectrum")


def envelope_chart(analysis: Mapping, unit: str) -> str:
    envelope = analysis["envelope"]
    markers = analysis["markers"]
    max_hz = envelope["freq_hz"][-1] if envelope["freq_hz"] else 0
    figure = go.Figure(go.Scatter(x=envelope["freq_hz"], y=envelope["amplitude"], line={"width": 1, "color": "#1f77b4"}, name="envelope"))
    for name, freqs in markers["defect_hz"].items():
        for k, freq in enumerate(freqs, start=1):
            if freq <= max_hz:
                figure.add_vline(x=freq, line={"color": DEFECT_STYLE.get(name, "#000"), "width": 1, "dash": "dash"},
                                 annotation_text=name if k == 1 else f"{k}×{name}", annotation_position="top right",
                                 annotation_font_size=10, annotation_font_color=DEFECT_STYLE.get(name, "#000"))
    _running_speed_lines(figure, markers, max_hz)
    low, high = envelope["band_hz"]
    figure.update_layout(height=300, title=f"Envelope spectrum (band {low:,.0f}-{high:,.0f} Hz)", xaxis_title="frequency (Hz)",
                         yaxis_title=f"{unit} peak", showlegend=False, **LAYOUT)
    return _html(figure, "vib-envelope")


def trend_chart(captures: Iterable[WaveformCapture], severity: Mapping) -> str:
    """Overall velocity RMS per point over time against the ISO 10816-3 zone boundaries."""
    by_point: dict[str, tuple[list, list]] = {}
    for capture in captures:
        if capture.velocity_rms_mm_s is None:
            continue
        times, values = by_point.setdefault(capture.point.name, ([], []))
        times.append(capture.captured_at)
        values.append(capture.velocity_rms_mm_s)
    figure = go.Figure()
    for point, (times, values) in sorted(by_point.items()):
        figure.add_trace(go.Scatter(x=times, y=values, mode="lines+markers", marker={"size": 4}, name=point))
    for boundary, value in severity["zone_limits_mm_s"].items():
        figure.add_hline(y=value, line={"color": ZONE_COLOURS[boundary], "width": 1, "dash": "dash"},
                         annotation_text=f"zone {boundary} {value:g} mm/s", annotation_position="top left", annotation_font_size=10)
    top = max([v for _, values in by_point.values() for v in values] + [severity["zone_limits_mm_s"]["C/D"]])
    figure.update_layout(height=260, title=f"Velocity RMS 10-1,000 Hz vs ISO 10816-3 ({severity['machine_group']}, {severity['foundation']})",
                         yaxis_title="mm/s RMS", yaxis_range=[0, top * 1.15], legend={"orientation": "h", "y": -0.25}, **LAYOUT)
    return _html(figure, "vib-trend")
