"""Models page: versions, activate and roll back through the analytics services."""

from __future__ import annotations

from django.utils import timezone

from phm.analytics.models import DetectorConfig, ModelVersion, TrainingJob


def _detector_with_versions(pump, sensors) -> DetectorConfig:
    config = DetectorConfig.objects.create(equipment=pump, name="pca-main", method="pca")
    config.sensors.set(sensors.values())
    now = timezone.now()
    for number in (1, 2):
        ModelVersion.objects.create(config=config, version=number, method="pca", artifact=f"x/{number}", threshold=1.5 * number,
                                    metrics={"fit_seconds": 0.5}, train_start=now, train_end=now, train_rows=100, is_active=number == 2)
    return config


def test_models_page_shows_versions_and_job_progress(client, engineer_user, plant):
    pump, sensors = plant
    config = _detector_with_versions(pump, sensors)
    TrainingJob.objects.create(config=config, train_start=timezone.now(), train_end=timezone.now(), status="running", percent=42.0, epoch=3, epochs=10, loss=0.1234, eta_s=17)
    client.force_login(engineer_user)
    page = client.get("/models/").content.decode()
    assert "P-101</a> / pca-main" in page and "v1" in page and "v2" in page
    assert 'value="42"' in page and "3 / 10" in page and "17 s" in page


def test_rollback_then_activate(client, engineer_user, plant):
    pump, sensors = plant
    config = _detector_with_versions(pump, sensors)
    client.force_login(engineer_user)
    client.post(f"/models/{config.pk}/rollback/")
    assert ModelVersion.objects.get(config=config, is_active=True).version == 1
    client.post(f"/models/{config.pk}/activate/", {"version": "2"})
    assert ModelVersion.objects.get(config=config, is_active=True).version == 2


def test_rollback_from_the_oldest_version_says_why(client, engineer_user, plant):
    pump, sensors = plant
    config = _detector_with_versions(pump, sensors)
    ModelVersion.objects.filter(config=config).update(is_active=False)
    ModelVersion.objects.filter(config=config, version=1).update(is_active=True)
    client.force_login(engineer_user)
    page = client.post(f"/models/{config.pk}/rollback/", follow=True).content.decode()
    assert "oldest version" in page


def test_operator_cannot_roll_back(client, operator_user, plant):
    pump, sensors = plant
    config = _detector_with_versions(pump, sensors)
    client.force_login(operator_user)
    assert client.post(f"/models/{config.pk}/rollback/").status_code == 403
    assert ModelVersion.objects.get(config=config, is_active=True).version == 2


def test_create_a_fleet_detector_from_the_page(client, engineer_user, plant):
    pump, sensors = plant
    client.force_login(engineer_user)
    page = client.get("/models/").content.decode()
    assert 'name="scope"' in page and '<option value="fleet"' in page
    page = client.post("/models/new/", {"equipment": "P-101", "name": "pca-fleet", "method": "pca", "scope": "fleet",
                                        "fleet_group": "feed-pumps"}, follow=True).content.decode()
    config = DetectorConfig.objects.get(equipment=pump, name="pca-fleet")
    assert (config.scope, config.fleet_group) == ("fleet", "feed-pumps")
    assert sorted(config.sensors.values_list("tag", flat=True)) == sorted(s.tag for s in sensors.values())
    assert "fleet feed-pumps" in page


def test_create_from_the_page_reports_the_api_validation_error(client, engineer_user, plant):
    client.force_login(engineer_user)
    page = client.post("/models/new/", {"equipment": "P-101", "name": "x", "method": "nope", "scope": "unit"}, follow=True).content.decode()
    assert "unknown method" in page and not DetectorConfig.objects.filter(name="x").exists()


def test_operator_cannot_create_a_detector(client, operator_user, plant):
    client.force_login(operator_user)
    assert client.post("/models/new/", {"equipment": "P-101", "name": "x", "method": "pca"}).status_code == 403
    assert not DetectorConfig.objects.exists()
