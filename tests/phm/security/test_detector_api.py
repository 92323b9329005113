"""Finding 5 of issue 19: the detector API answered 500 as soon as a detector had scores,
because ``scored_until`` and a score's ``ts`` are epoch-microsecond fields that DRF treated
as integers. These tests read every detector endpoint with data in it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from phm.analytics.models import AnomalyScore, DetectorConfig


@pytest.fixture
def scored_detector(plant, t0):
    pump, sensors = plant
    config = DetectorConfig.objects.create(equipment=pump, name="pca-main", method="pca", scored_until=t0 + timedelta(seconds=2))
    config.sensors.set(sensors.values())
    AnomalyScore.objects.bulk_create(AnomalyScore(config=config, ts=t0 + timedelta(seconds=i), score=0.1 * i, threshold=1.0) for i in range(3))
    return config


def test_detector_list_shows_scored_until_as_iso_time(operator_api, scored_detector, t0):
    response = operator_api.get("/api/v1/detectors/")
    assert response.status_code == 200, response.content[:300]
    assert response.json()["results"][0]["scored_until"] == (t0 + timedelta(seconds=2)).isoformat().replace("+00:00", "Z")


def test_detector_detail_shows_scored_until(operator_api, scored_detector, t0):
    response = operator_api.get(f"/api/v1/detectors/{scored_detector.pk}/")
    assert response.status_code == 200, response.content[:300]
    assert response.json()["scored_until"] == "2026-03-01T00:00:02Z"


def test_detector_scores_are_listed_with_iso_times(operator_api, scored_detector):
    response = operator_api.get(f"/api/v1/detectors/{scored_detector.pk}/scores/")
    assert response.status_code == 200, response.content[:300]
    assert [row["ts"] for row in response.json()] == ["2026-03-01T00:00:00Z", "2026-03-01T00:00:01Z", "2026-03-01T00:00:02Z"]
    assert [row["score"] for row in response.json()] == pytest.approx([0.0, 0.1, 0.2])


def test_unscored_detector_shows_null_scored_until(operator_api, plant):
    config = DetectorConfig.objects.create(equipment=plant[0], name="fresh", method="pca")
    assert operator_api.get(f"/api/v1/detectors/{config.pk}/").json()["scored_until"] is None


def test_schema_describes_scored_until_as_date_time(operator_api, db):
    import yaml

    schema = yaml.safe_load(operator_api.get("/api/schema/").content)
    assert schema["components"]["schemas"]["DetectorConfig"]["properties"]["scored_until"]["format"] == "date-time"
    assert schema["components"]["schemas"]["AnomalyScore"]["properties"]["ts"]["format"] == "date-time"
