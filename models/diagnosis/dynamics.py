"""Each measure's last minutes against what its own inertia and the unit's other measures say.

A bearing thermocouple that starts to walk away is a quarter of a degree off five minutes in. Its
own recent line (:func:`models.diagnosis.features.trend_breaks`) does not see that reliably: the
bearing follows the pump's speed through a thermal lag of a quarter of an hour, so a few minutes
of speed wander bend its line as much. Here each measure's next bin is predicted from its own
previous bin and from every other measure now and one bin before (a linear ARX model, ridge,
fitted per equipment type on normal windows in standardised units), and the model is run free
over the last ``h`` bins from the measured value ``h`` bins before the end, the others driving it.
The measured end minus the free run is what the measure did that the unit does not explain. A
unit's own offset from its type (a pump that runs warmer than the fleet) would add up over the
free run, so each window's mean one-step error before the free run is taken out first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.diagnosis.features import BinnedWindow, NormalStats, _robust_centre_scale, scaled_breaks_summary

#: Bins the model runs free before the window's end (about 3 and 6 minutes of a 30-minute window
#: of 32 bins): one horizon for an abrupt start, one for a slow walk.
DYNAMICS_HORIZONS = (3, 6)
#: Statistics over the measures in :func:`dynamics_summary`, per horizon.
N_DYNAMICS_CROSS = 3
RIDGE = 1e-3


def dynamics_summary_size(n_measures: int) -> int:
    return len(DYNAMICS_HORIZONS) * (n_measures + N_DYNAMICS_CROSS)


def _standard_levels(window: BinnedWindow, stats: NormalStats) -> np.ndarray:
    """``[M, L]`` bin means in the type's normal units; zeros where a measure is absent."""
    z = (window.level - stats.centre[:, 0:1]) / stats.scale[:, 0:1]
    z[~window.present] = 0.0
    return np.nan_to_num(z, nan=0.0)


def _design(z: np.ndarray, measure: int) -> np.ndarray:
    """``[L - 1, 2 M + 2]`` inputs predicting bin ``k`` of ``measure``: its own bin ``k - 1``, every
    other measure at ``k`` and ``k - 1`` (its own columns zero), and 1."""
    others = z.copy()
    others[measure] = 0.0
    return np.column_stack([z[measure, :-1], others[:, 1:].T, others[:, :-1].T, np.ones(z.shape[1] - 1)])


def fit_dynamics(windows: Sequence[BinnedWindow], stats: NormalStats) -> tuple[np.ndarray, np.ndarray] | None:
    """``(coefficients [M, 2 M + 2], scale [M, H])`` fitted on normal ``windows`` of one type: the
    ridge ARX model of each present measure on all of them, and the robust scale of its free-run
    errors on windows the model did not see (two folds: a scale from the fitted windows comes out
    too small, and every normal window would look a little off); None with fewer than four windows."""
    if len(windows) < 4:
        return None
    levels = [(_standard_levels(w, stats), w.present) for w in windows]
    folds = [levels[0::2], levels[1::2]]
    errors = np.concatenate([
        np.stack([_free_run_errors(z, present, _fit_coefficients(other)) for z, present in mine])
        for mine, other in ((folds[0], folds[1]), (folds[1], folds[0]))
    ])  # [N, M, H]
    n_measures = windows[0].level.shape[0]
    scale = np.ones((n_measures, len(DYNAMICS_HORIZONS)))
    for m in range(n_measures):
        for h in range(len(DYNAMICS_HORIZONS)):
            scale[m, h] = _robust_centre_scale(errors[:, m, h])[1]
    return _fit_coefficients(levels), scale


def _fit_coefficients(levels: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    n_measures = levels[0][0].shape[0]
    coefficients = np.zeros((n_measures, 2 * n_measures + 2))
    for m in range(n_measures):
        rows = [_design(z, m) for z, present in levels if present[m]]
        if not rows:
            continue
        x = np.vstack(rows)
        y = np.concatenate([z[m, 1:] for z, present in levels if present[m]])
        coefficients[m] = np.linalg.solve(x.T @ x + RIDGE * len(y) * np.eye(x.shape[1]), x.T @ y)
    return coefficients


def _free_run_errors(z: np.ndarray, present: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """``[M, H]`` measured end minus the free run over each horizon, in normal units; NaN where a
    measure is absent or the window too short."""
    n_measures, n_bins = z.shape
    out = np.full((n_measures, len(DYNAMICS_HORIZONS)), np.nan)
    for m in np.flatnonzero(present):
        c = coefficients[m]
        drive = _design(z, m)[:, 1:] @ c[1:]  # [L - 1]: what the others and the intercept add at bin k
        one_step = z[m, 1:] - (c[0] * z[m, :-1] + drive)
        for h, horizon in enumerate(DYNAMICS_HORIZONS):
            start = n_bins - 1 - horizon
            if start < 2:
                continue
            bias = float(one_step[:start].mean())  # the unit's own offset from its type
            predicted = z[m, start]
            for k in range(start + 1, n_bins):
                predicted = c[0] * predicted + drive[k - 1] + bias
            out[m, h] = z[m, -1] - predicted
    return out


def dynamics_summary(window: BinnedWindow, stats: NormalStats) -> np.ndarray:
    """The window's free-run errors over their normal scale as ``[H (M + 3)]`` statistics: per
    measure and horizon the error; per horizon the largest absolute error with its sign, the second
    largest ("one measure alone" against "several together") and the share of measures past three
    normal scales. Compressed as ``sign(x) log(1 + |x|)``; zeros for absent measures and for
    statistics without a dynamics model."""
    if stats.dynamics is None or stats.dynamics_scale is None or not window.present.any():
        return np.zeros(dynamics_summary_size(window.level.shape[0]))
    errors = _free_run_errors(_standard_levels(window, stats), window.present, stats.dynamics)
    return scaled_breaks_summary(errors / stats.dynamics_scale, window.present)
