"""CRUD over the ISA-95 hierarchy through the API."""

from __future__ import annotations


def test_create_hierarchy_through_the_api(api_client, db):
    site = api_client.post("/api/v1/sites/", {"code": "south", "name": "South plant"}, format="json").json()
    area = api_client.post("/api/v1/areas/", {"site": site["id"], "code": "cooling", "name": "Cooling"}, format="json").json()
    line = api_client.post("/api/v1/lines/", {"area": area["id"], "code": "ct", "name": "Cooling towers"}, format="json").json()
    equipment = api_client.post(
        "/api/v1/equipment/", {"line": line["id"], "tag": "F-901", "name": "Tower fan", "equipment_type": "fan", "criticality": "A"}, format="json"
    )
    assert equipment.status_code == 201
    assert equipment.json()["path"] == "south/cooling/ct/F-901"
    sensor = api_client.post(
        "/api/v1/sensors/", {"equipment": "F-901", "tag": "F-901.VIB", "name": "Vibration", "unit": "mm/s", "range_low": 0, "range_high": 50}, format="json"
    )
    assert sensor.status_code == 201
    assert api_client.get("/api/v1/sensors/F-901.VIB/").json()["unit"] == "mm/s"


def test_sensor_with_inverted_range_is_rejected(api_client, plant):
    response = api_client.post(
        "/api/v1/sensors/", {"equipment": "P-101", "tag": "P-101.X", "name": "x", "range_low": 10, "range_high": 1}, format="json"
    )
    assert response.status_code == 400
    assert "range_high" in response.json()["detail"]


def test_update_and_delete_sensor(api_client, plant):
    assert api_client.patch("/api/v1/sensors/P-101.VIB/", {"unit": "in/s"}, format="json").json()["unit"] == "in/s"
    assert api_client.delete("/api/v1/sensors/P-101.VIB/").status_code == 204
    assert api_client.get("/api/v1/sensors/P-101.VIB/").status_code == 404


def test_unknown_equipment_type_is_rejected(api_client, plant):
    line_id = plant[0].line_id
    response = api_client.post("/api/v1/equipment/", {"line": line_id, "tag": "X-1", "name": "x", "equipment_type": "spaceship"}, format="json")
    assert response.status_code == 400
    assert "equipment_type" in response.json()["detail"]
