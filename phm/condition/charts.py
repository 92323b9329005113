"""Plotly figures of the equipment page's Vibration section, built from ``spectra.capture_analysis``
and the velocity RMS trend (HTML fragments; plotly.js is served locally)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import plotly.io as pio

from phm.condition.models import WaveformCapture

DEFECT_STYLE = {"BPFO": "#b42318", "BPFI": "#7a2e98", "BSF": "#027a48", "FTF": "#b54708"}
RUNNING_STYLE = "#475467"
ZONE_COLOURS = {"A/B": "#12b76a", "B/C": "#f79009", "C/D": "#d92d20"}
CONFIG = {"displaylogo": False, "responsive": True}
AXIS = {"gridcolor": "#eaecf0", "zerolinecolor": "#d0d5dd"}


# Figures are plain dicts rendered without Plotly's per-property validation: with 10,000-line
# spectra and a few dozen marker lines, building graph objects (add_vline ...) took 0.8 s a page.
def _html(data: list[dict], layout: dict, div_id: str) -> str:
    base = {"margin": {"l": 60, "r": 10, "t": 30, "b": 40}, "plot_bgcolor": "white", "paper_bgcolor": "white",
            "font": {"size": 12}, "shapes": [], "annotations": []}
    base.update(layout)
    base["xaxis"] = {**AXIS, **layout.get("xaxis", {})}
    base["yaxis"] = {**AXIS, **layout.get("yaxis", {})}
    return pio.to_html({"data": data, "layout": base}, validate=False, full_html=False, include_plotlyjs=False, config=CONFIG, div_id=div_id)


def _vline(x: float, colour: str, dash: str, text: str, *, position: str = "right", row: int = 0) -> tuple[dict, dict]:
    shape = {"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1, "line": {"color": colour, "width": 1, "dash": dash}}
    # One label row per marker family, so BPFO, BSF and FTF labels near each other do not overprint.
    label = {"x": x, "y": 1, "xref": "x", "yref": "paper", "text": text, "showarrow": False, "xanchor": "left" if position == "right" else "center",
             "yanchor": "bottom", "yshift": -13 * row, "font": {"size": 10, "color": colour}}
    return shape, label


def _hline(y: float, colour: str, text: str) -> tuple[dict, dict]:
    shape = {"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": y, "y1": y, "line": {"color": colour, "width": 1, "dash": "dash"}}
    label = {"x": 0, "y": y, "xref": "paper", "yref": "y", "text": text, "showarrow": False, "xanchor": "left", "yanchor": "bottom",
             "font": {"size": 10, "color": colour}}
    return shape, label


def _line(x: list, y: list, name: str, **extra) -> dict:
    return {"type": "scatter", "mode": "lines", "x": x, "y": y, "name": name, "line": {"width": 1, **extra.pop("line", {})}, **extra}


def waveform_chart(analysis: Mapping, unit: str) -> str:
    wave = analysis["waveform"]
    return _html([_line(wave["t_s"], wave["value"], "waveform")],
                 {"height": 220, "title": {"text": "Waveform"}, "xaxis": {"title": {"text": "time (s)"}}, "yaxis": {"title": {"text": unit}}},
                 "vib-waveform")


def _running_speed_lines(markers: Mapping, max_hz: float) -> tuple[list, list]:
    shapes, labels = [], []
    for k, freq in enumerate(markers["running_speed_hz"], start=1):
        if freq <= max_hz:
            shape, label = _vline(freq, RUNNING_STYLE, "dot", f"{k}×", position="top")
            shapes.append(shape)
            labels.append(label)
    return shapes, labels


def spectrum_chart(analysis: Mapping, unit: str) -> str:
    spectrum = analysis["spectrum"]
    top = spectrum["freq_hz"][-1] if spectrum["freq_hz"] else 0
    shapes, labels = _running_speed_lines(analysis["markers"], top)
    speed = analysis["markers"]["speed_rpm"]
    # The running-speed family sits at the low end: show up to 12x by default (zoom out for the rest).
    xaxis = {"title": {"text": "frequency (Hz)"}, **({"range": [0, min(top, 12 * speed / 60.0)]} if speed else {})}
    return _html([_line(spectrum["freq_hz"], spectrum["amplitude"], "amplitude")],
                 {"height": 260, "title": {"text": "FFT amplitude spectrum (Hann, peak)"}, "xaxis": xaxis,
                  "yaxis": {"title": {"text": f"{unit} peak"}}, "shapes": shapes, "annotations": labels}, "vib-spectrum")


def envelope_chart(analysis: Mapping, unit: str) -> str:
    envelope = analysis["envelope"]
    markers = analysis["markers"]
    max_hz = envelope["freq_hz"][-1] if envelope["freq_hz"] else 0
    shapes, labels = [], []
    for row, (name, freqs) in enumerate(markers["defect_hz"].items(), start=1):
        for k, freq in enumerate(freqs, start=1):
            if freq <= max_hz:
                shape, label = _vline(freq, DEFECT_STYLE.get(name, "#000"), "dash", name if k == 1 else f"{k}×{name}", row=row)
                shapes.append(shape)
                labels.append(label)
    running_shapes, running_labels = _running_speed_lines(markers, max_hz)
    low, high = envelope["band_hz"]
    marked = [f for freqs in markers["defect_hz"].values() for f in freqs if f <= max_hz]
    # Open on the marked family (to a bit past 3x BPFI); the whole envelope spectrum is a zoom-out away.
    xaxis = {"title": {"text": "frequency (Hz)"}, **({"range": [0, min(max_hz, 1.15 * max(marked))]} if marked else {})}
    return _html([_line(envelope["freq_hz"], envelope["amplitude"], "envelope", line={"color": "#1f77b4"})],
                 {"height": 340, "title": {"text": f"Envelope spectrum (band {low:,.0f}-{high:,.0f} Hz)"}, "showlegend": False,
                  "margin": {"l": 60, "r": 10, "t": 90, "b": 40}, "xaxis": xaxis, "yaxis": {"title": {"text": f"{unit} peak"}},
                  "shapes": shapes + running_shapes, "annotations": labels + running_labels}, "vib-envelope")


def trend_chart(captures: Iterable[WaveformCapture], severity: Mapping) -> str:
    """Overall velocity RMS per point over time against the ISO 10816-3 zone boundaries."""
    by_point: dict[str, tuple[list, list]] = {}
    for capture in captures:
        if capture.velocity_rms_mm_s is None:
            continue
        times, values = by_point.setdefault(capture.point.name, ([], []))
        times.append(capture.captured_at.isoformat())
        values.append(round(capture.velocity_rms_mm_s, 4))
    data = [{"type": "scatter", "mode": "lines+markers", "x": times, "y": values, "name": point, "marker": {"size": 4}}
            for point, (times, values) in sorted(by_point.items())]
    shapes, labels = [], []
    for boundary, value in severity["zone_limits_mm_s"].items():
        shape, label = _hline(value, ZONE_COLOURS[boundary], f"zone {boundary} {value:g} mm/s")
        shapes.append(shape)
        labels.append(label)
    top = max([v for _, values in by_point.values() for v in values] + [severity["zone_limits_mm_s"]["C/D"]])
    title = f"Velocity RMS 10-1,000 Hz vs ISO 10816-3 ({severity['machine_group']}, {severity['foundation']})"
    return _html(data, {"height": 260, "title": {"text": title}, "yaxis": {"title": {"text": "mm/s RMS"}, "range": [0, top * 1.15]},
                        "legend": {"orientation": "h", "y": -0.25}, "shapes": shapes, "annotations": labels}, "vib-trend")
