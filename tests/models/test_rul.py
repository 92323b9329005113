"""RULEstimator: targets, column selection, normalisation, fit/predict contract, persistence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.metrics.regression import rmse
from models.rul import RULEstimator, _History, informative_columns, piecewise_linear_rul, window_features


def fleet(n_units: int, *, seed: int = 0) -> pd.DataFrame:
    """Run-to-failure units: three sensors drift quadratically to failure from a unit-specific offset."""
    rng = np.random.default_rng(seed)
    rows = []
    for unit in range(1, n_units + 1):
        length = int(rng.integers(60, 120))
        offset = rng.normal(0, 1.0, 3)
        for cycle in range(1, length + 1):
            wear = (cycle / length) ** 2
            rows.append({
                "unit": unit, "cycle": cycle,
                "sensor_a": offset[0] + 4 * wear + rng.normal(0, 0.1),
                "sensor_b": offset[1] - 3 * wear + rng.normal(0, 0.1),
                "sensor_c": offset[2] + 2 * wear + rng.normal(0, 0.1),
                "setting_constant": 100.0,
                "sensor_two_values": float(cycle % 2),
            })
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def fitted() -> RULEstimator:
    estimator = RULEstimator("inceptiontime", rul_cap=60, window=10, nf=4, epochs=6, batch_size=64, learning_rate=3e-3, train_stride=2, interval=None)
    return estimator.fit(fleet(16))


def test_piecewise_linear_target_is_capped_remaining_cycles():
    frame = pd.DataFrame({"unit": [1] * 5, "cycle": [1, 2, 3, 4, 5]})
    assert piecewise_linear_rul(frame, cap=3).tolist() == [3, 3, 2, 1, 0]
    assert piecewise_linear_rul(frame, cap=None).tolist() == [4, 3, 2, 1, 0]


def test_constant_and_two_valued_columns_are_dropped():
    assert informative_columns(fleet(2)) == ["sensor_a", "sensor_b", "sensor_c"]


def test_unit_normalisation_removes_each_units_starting_offset():
    base = fleet(1)
    shifted = base.assign(unit=2, sensor_a=base["sensor_a"] + 5.0)
    history = _History(["sensor_a"], "unit", baseline_cycles=10, window=5)
    history.fit(pd.concat([base, shifted]))
    np.testing.assert_allclose(history.per_cycle(base), history.per_cycle(shifted), atol=1e-5)


def test_predict_returns_rul_at_each_units_last_cycle(fitted):
    test = fleet(8, seed=9)
    cut = test[test["cycle"] <= test.groupby("unit")["cycle"].transform("max") - 20]  # 20 cycles left
    predicted = fitted.predict(cut)
    assert isinstance(predicted, pd.Series) and predicted.index.name == "unit"
    assert predicted.index.tolist() == list(range(1, 9))
    assert ((predicted >= 0) & (predicted <= 60)).all()


def test_fitted_model_beats_predicting_the_mean(fitted):
    test = fleet(10, seed=5)
    truth = piecewise_linear_rul(test, cap=60).to_numpy()
    predicted = fitted.predict_cycles(test).to_numpy()
    assert rmse(truth, predicted) < 0.6 * rmse(truth, np.full_like(truth, truth.mean()))


def test_predict_cycles_gives_a_value_per_row(fitted):
    test = fleet(2, seed=3)
    per_cycle = fitted.predict_cycles(test)
    assert per_cycle.index.names == ["unit", "cycle"] and len(per_cycle) == len(test)


def test_save_load_round_trip(fitted, tmp_path):
    test = fleet(3, seed=4)
    restored = RULEstimator.load(fitted.save(tmp_path / "rul"))
    pd.testing.assert_series_equal(restored.predict(test), fitted.predict(test), atol=1e-5)


def test_reprogram_regressor_trains_on_the_trunk(tmp_path):
    train = fleet(6)
    estimator = RULEstimator("reprogram", rul_cap=60, window=8, backbone_mode="tiny", patch_len=4, epochs=1, train_stride=4, interval=None).fit(train)
    trainable, total = estimator.parameter_counts()
    assert 0 < trainable < total
    restored = RULEstimator.load(estimator.save(tmp_path / "rp"))
    pd.testing.assert_series_equal(restored.predict(train), estimator.predict(train), atol=1e-4)


def test_fit_rejects_missing_columns_duplicates_and_nan():
    frame = fleet(2)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['cycle'\]"):
        RULEstimator().fit(frame.drop(columns="cycle"))
    with pytest.raises(ValueError, match="appears more than once"):
        RULEstimator().fit(pd.concat([frame, frame.iloc[:1]]))
    with pytest.raises(ValueError, match="NaN values in column"):
        RULEstimator().fit(frame.assign(sensor_a=np.nan))


def test_predict_needs_the_fitted_columns(fitted):
    with pytest.raises(ValueError, match="sensor_b"):
        fitted.predict(fleet(1).drop(columns="sensor_b"))


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown method 'lstm'"):
        RULEstimator("lstm")


def test_window_features_see_level_trend_and_spread():
    ramp = np.arange(30, dtype=np.float32)[None, None, :]  # one window, one channel: 0..29
    last, mean5, mean10, mean, slope10, slope, std = window_features(ramp)[0]
    assert (last, mean5, mean10, mean) == (29.0, 27.0, 24.5, 14.5)
    assert slope10 == pytest.approx(1.0) and slope == pytest.approx(1.0) and std == pytest.approx(np.arange(30).std())


def test_lightgbm_estimator_beats_the_mean_and_round_trips(tmp_path):
    train, test = fleet(24), fleet(6, seed=3)
    estimator = RULEstimator("lightgbm", rul_cap=60, window=10, n_estimators=200).fit(train)
    truth = (test.groupby("unit")["cycle"].max() - test.groupby("unit")["cycle"].max()).clip(upper=60)  # 0 at last cycle
    predicted = estimator.predict(test)
    assert rmse(truth.to_numpy(), predicted.to_numpy()) < rmse(truth.to_numpy(), np.full(len(truth), 30.0))
    trainable, total = estimator.parameter_counts()
    assert trainable == total > 0
    restored = RULEstimator.load(estimator.save(tmp_path / "gbm"))
    pd.testing.assert_series_equal(restored.predict(test), predicted)


def test_seed_ensemble_averages_members_and_round_trips(tmp_path):
    train = fleet(8)
    estimator = RULEstimator("inceptiontime", rul_cap=60, window=8, nf=2, epochs=1, train_stride=4, n_models=2, interval=None).fit(train)
    assert estimator.training_log.epochs_run == 2
    single = RULEstimator("inceptiontime", rul_cap=60, window=8, nf=2, epochs=1, train_stride=4, interval=None).fit(train)
    assert estimator.parameter_counts()[0] == 2 * single.parameter_counts()[0]
    restored = RULEstimator.load(estimator.save(tmp_path / "ens"))
    pd.testing.assert_series_equal(restored.predict(train), estimator.predict(train), atol=1e-5)


@pytest.fixture(scope="module")
def boosted() -> RULEstimator:
    return RULEstimator("lightgbm", rul_cap=60, window=10, n_estimators=200, interval=0.8, interval_folds=4).fit(fleet(24))


def test_interval_covers_about_its_level_on_new_units(boosted):
    test = fleet(40, seed=5)
    rng = np.random.default_rng(1)
    cuts = {u: int(rng.integers(15, n)) for u, n in test.groupby("unit")["cycle"].max().items()}
    observed = test[test["cycle"] <= test["unit"].map(cuts)]
    bounds = boosted.predict_interval(observed)
    true = (test.groupby("unit")["cycle"].max() - pd.Series(cuts)).clip(upper=60).loc[bounds.index]
    inside = ((bounds["lower"] <= true) & (true <= bounds["upper"])).mean()
    assert 0.6 <= inside <= 0.97
    assert (bounds["lower"] <= bounds["rul"]).all() and (bounds["rul"] <= bounds["upper"]).all()
    assert (bounds["upper"] - bounds["lower"]).mean() < 40  # informative, not [0, cap]
    assert boosted.n_units_ == 24


def test_interval_and_history_count_survive_save_and_load(boosted, tmp_path):
    test = fleet(6, seed=3)
    loaded = RULEstimator.load(boosted.save(tmp_path / "rul"))
    pd.testing.assert_frame_equal(loaded.predict_interval(test), boosted.predict_interval(test))
    assert loaded.n_units_ == 24


def test_interval_needs_enough_units_and_can_be_turned_off():
    with pytest.raises(ValueError, match="at least interval_folds"):
        RULEstimator("lightgbm", rul_cap=60, window=10, n_estimators=20, interval_folds=5).fit(fleet(3))
    plain = RULEstimator("lightgbm", rul_cap=60, window=10, n_estimators=20, interval=None).fit(fleet(3))
    with pytest.raises(RuntimeError, match="no prediction interval"):
        plain.predict_interval(fleet(1))
