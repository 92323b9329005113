"""What an analyst looks at for one capture: amplitude spectrum, envelope spectrum, velocity RMS and
its ISO 10816-3 zone, bearing defect frequencies and running-speed harmonics.

The spectra are computed once per capture and kept in Django's cache (Redis in production): a
capture never changes, so the entry never goes stale; it is keyed by the capture's id and creation
time, so a database rebuilt with reused ids cannot serve another capture's spectra. What depends on
editable settings (the point's bearing geometry, the machine's speed, group and foundation) is
worked out on each call, which costs microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.core.cache import cache

from models.vibration import (
    DEFECTS,
    BearingGeometry,
    amplitude_spectrum,
    default_envelope_band,
    defect_frequencies,
    envelope_spectrum,
    iso_zone_limits,
    running_speed_harmonics,
)
from phm.condition.models import WaveformCapture

CACHE_VERSION = 1
#: Envelope spectrum shown up to this frequency: past 3x BPFI of any pump or motor bearing.
ENVELOPE_MAX_HZ = 1000.0
#: Points of the waveform sent to the page (min/max per bucket keeps the peaks visible).
WAVEFORM_POINTS = 4000


@dataclass(frozen=True)
class SpectraSettings:
    envelope_band_hz: tuple[float, float] | None = None  # None: models.vibration.default_envelope_band
    envelope_max_hz: float = ENVELOPE_MAX_HZ


def cache_key(capture: WaveformCapture) -> str:
    return f"condition:spectra:v{CACHE_VERSION}:{capture.pk}:{capture.created_at.timestamp():.6f}"


def _rounded(values: np.ndarray, digits: int = 6) -> list[float]:
    # float32 precision is all the capture holds; rounding keeps the cached JSON small.
    return [float(v) for v in np.round(values.astype(np.float64), digits)]


def _waveform_preview(values: np.ndarray, rate: float) -> dict:
    n = len(values)
    if n <= WAVEFORM_POINTS:
        return {"t_s": _rounded(np.arange(n) / rate), "value": _rounded(values)}
    buckets = WAVEFORM_POINTS // 2
    edges = np.linspace(0, n, buckets + 1).astype(int)
    times, out = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        chunk = values[lo:hi]
        i_min, i_max = lo + int(np.argmin(chunk)), lo + int(np.argmax(chunk))
        for i in sorted((i_min, i_max)):
            times.append(i / rate)
            out.append(values[i])
    return {"t_s": _rounded(np.asarray(times)), "value": _rounded(np.asarray(out))}


def compute_spectra(capture: WaveformCapture, *, options: SpectraSettings = SpectraSettings()) -> dict:
    """The heavy part (FFT of the capture, band-pass, Hilbert, envelope FFT), JSON-ready."""
    values = capture.waveform().astype(np.float64)
    rate = capture.sample_rate_hz
    spectrum = amplitude_spectrum(values, rate).truncated(rate / 2.56)  # up to the analyser's usual Fmax
    band = options.envelope_band_hz or default_envelope_band(rate)
    envelope = envelope_spectrum(values, rate, band_hz=band, max_hz=min(options.envelope_max_hz, rate / 2))
    return {
        "waveform": _waveform_preview(values, rate),
        "spectrum": {"freq_hz": _rounded(spectrum.freq_hz, 4), "amplitude": _rounded(spectrum.amplitude)},
        "envelope": {"freq_hz": _rounded(envelope.freq_hz, 4), "amplitude": _rounded(envelope.amplitude), "band_hz": [float(b) for b in band]},
    }


def cached_spectra(capture: WaveformCapture) -> tuple[dict, bool]:
    """(spectra, True when they came from the cache)."""
    key = cache_key(capture)
    found = cache.get(key)
    if found is not None:
        return found, True
    spectra = compute_spectra(capture)
    cache.set(key, spectra, timeout=None)  # immutable captures: no expiry needed; the cache evicts by size
    return spectra, False


def shaft_speed_rpm(capture: WaveformCapture) -> float | None:
    return capture.speed_rpm or capture.equipment.running_speed_rpm or None


def bearing_geometry(capture: WaveformCapture) -> BearingGeometry | None:
    point = capture.point
    if not point.has_bearing_geometry:
        return None
    return BearingGeometry(point.pitch_diameter_mm, point.ball_diameter_mm, point.rolling_elements, point.contact_angle_deg or 0.0)


def markers(capture: WaveformCapture, *, harmonics: int = 3) -> dict:
    """Defect frequencies (BPFO, BPFI, BSF, FTF x harmonics) and 1x..3x running speed, in Hz; empty
    where the speed or the bearing geometry is not known, with the reason."""
    speed = shaft_speed_rpm(capture)
    out: dict = {"speed_rpm": speed, "running_speed_hz": [], "defect_hz": {}, "orders": {}, "missing": []}
    if speed is None:
        out["missing"].append("shaft speed (capture speed_rpm or equipment running_speed_rpm)")
        return out
    out["running_speed_hz"] = running_speed_harmonics(shaft_speed_rpm=speed, harmonics=harmonics)
    geometry = bearing_geometry(capture)
    if geometry is None:
        out["missing"].append(f"bearing geometry of point {capture.point.name}")
        return out
    out["orders"] = {k: float(v) for k, v in geometry.orders().items()}
    out["defect_hz"] = {k: [float(f) for f in v] for k, v in defect_frequencies(geometry, shaft_speed_rpm=speed, harmonics=harmonics).items()}
    return out


def severity(capture: WaveformCapture) -> dict:
    equipment = capture.equipment
    limits = iso_zone_limits(machine_group=equipment.machine_group, foundation=equipment.foundation)
    value = capture.velocity_rms_mm_s
    return {
        "velocity_rms_mm_s": value, "band_hz": [10.0, min(1000.0, capture.sample_rate_hz / 2.56)],
        "machine_group": equipment.machine_group, "foundation": equipment.foundation,
        "zone_limits_mm_s": {"A/B": limits.ab, "B/C": limits.bc, "C/D": limits.cd},
        "zone": limits.zone(value) if value is not None else None,
    }


def capture_analysis(capture: WaveformCapture, *, envelope_band_hz: tuple[float, float] | None = None) -> dict:
    """Everything the spectrum endpoint and the equipment page show for one capture. A band other
    than the default is computed for this call only (the cache holds the default band)."""
    if envelope_band_hz is None:
        spectra, from_cache = cached_spectra(capture)
    else:
        spectra, from_cache = compute_spectra(capture, options=SpectraSettings(envelope_band_hz=envelope_band_hz)), False
    return {"capture": capture.pk, **spectra, "markers": markers(capture), "severity": severity(capture), "cached": from_cache,
            "defects": list(DEFECTS)}
