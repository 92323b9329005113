"""The incident of an alarm carries its detector's per-sensor drift residuals, read from storage
(phm.analytics.residuals), so the diagnosis sees what made the detector raise."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pytest

pytest.importorskip("models.detectors")

from phm.analytics import diagnosis, training
from phm.analytics.models import DetectorConfig
from phm.assets.models import Equipment
from tests.phm.analytics.helpers import healthy_values, ingest

TRAIN_S = 3600
DRIFT_S = 300.0


@dataclass
class _Alarm:
    equipment: Equipment
    raised_at: datetime
    source: str = ""


def window_600() -> diagnosis.DiagnosisConfig:
    return dataclasses.replace(diagnosis.DiagnosisConfig.from_env(), window_s=600.0)


def trained_config(plant, start: datetime, *, params: dict, name: str = "pca-main") -> DetectorConfig:
    pump, sensors = plant
    config = DetectorConfig.objects.create(equipment=pump, name=name, method="pca", params=params, stride_s=1.0, window_s=DRIFT_S + 60)
    config.sensors.set(sensors.values())
    job = training.run_training(job_id=training.start_training(config=config, train_start=start, train_end=start + timedelta(seconds=TRAIN_S)).pk)
    assert job.result is not None, job.error
    return config


def ingest_with_walking_temperature(plant, start: datetime) -> datetime:
    """An hour of healthy history, then 20 min in which the temperature transmitter walks 30 °C/h
    away while the load it follows is unchanged; returns the end."""
    _, sensors = plant
    values = healthy_values(TRAIN_S + 1200, seed=4)
    values[TRAIN_S:, 1] += 30.0 * np.arange(1200) / 3600
    ingest(sensors, start, values)
    return start + timedelta(seconds=TRAIN_S + 1199)


def test_the_incident_carries_the_detectors_residuals_per_measure(plant, t0):
    end = ingest_with_walking_temperature(plant, t0)
    trained_config(plant, t0, params={"smooth": 3, "drift_s": DRIFT_S})
    alarm = _Alarm(plant[0], end, "detector:pca-main")
    incident, window = diagnosis.build_incident(alarm=alarm, config=window_600())
    residuals = incident.residuals
    assert set(residuals.columns) == {"VIB", "TEMP", "PRESS"}  # measures, as the sensor window's columns
    assert residuals.index.min() >= window.start and residuals.index.max() <= window.end
    assert not residuals.isna().any().any()  # the detector read its trailing window before the diagnosis window
    last = residuals.iloc[-1]
    assert last["TEMP"] > 2.0 and abs(last["VIB"]) < last["TEMP"] / 2 and abs(last["PRESS"]) < last["TEMP"] / 2


def test_no_drift_check_no_residuals_and_the_diagnosis_window_is_unchanged(plant, t0):
    end = ingest_with_walking_temperature(plant, t0)
    trained_config(plant, t0, params={"smooth": 3})
    incident, _ = diagnosis.build_incident(alarm=_Alarm(plant[0], end), config=window_600())
    assert incident.residuals is None and incident.sensors is not None


def test_a_detector_that_cannot_score_costs_the_residuals_not_the_incident(plant, t0, monkeypatch):
    from phm.analytics import residuals as residuals_module

    end = ingest_with_walking_temperature(plant, t0)
    trained_config(plant, t0, params={"smooth": 3, "drift_s": DRIFT_S})

    def broken(**kwargs):
        raise OSError("artifact folder unreadable")

    monkeypatch.setattr(residuals_module, "detector_residuals", broken)
    incident, _ = diagnosis.build_incident(alarm=_Alarm(plant[0], end), config=window_600())
    assert incident.residuals is None and incident.sensors is not None


def test_the_detector_that_raised_is_preferred(plant, t0):
    from phm.analytics.residuals import drift_detector

    ingest_with_walking_temperature(plant, t0)
    first = trained_config(plant, t0, params={"smooth": 3, "drift_s": DRIFT_S}, name="first")
    second = trained_config(plant, t0, params={"smooth": 3, "drift_s": 2 * DRIFT_S}, name="second")
    assert drift_detector(equipment=plant[0])[0] == first
    assert drift_detector(equipment=plant[0], source="detector:second")[0] == second
