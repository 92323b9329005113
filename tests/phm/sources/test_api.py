"""Connector definitions through the API: validated config, status attached."""

from __future__ import annotations

import pytest

from phm.sources.models import ConnectorDefinition, ConnectorStatus

pytestmark = pytest.mark.django_db

MODBUS = {
    "host": "127.0.0.1",
    "port": 5020,
    "period_s": 1.0,
    "registers": [{"tag": "P-101.PRESS", "address": 0, "dtype": "float32", "scale": 0.01}],
}


def test_create_and_list_a_definition_with_its_status(api_client):
    response = api_client.post("/api/v1/connectors/", {"name": "plc-1", "kind": "modbus", "config": MODBUS}, format="json")
    assert response.status_code == 201, response.content
    definition = ConnectorDefinition.objects.get(name="plc-1")
    ConnectorStatus.objects.create(connector=definition, state="running", connected=True, accepted=42, last_error="timeout")
    listed = api_client.get("/api/v1/connectors/").json()
    row = listed["results"][0] if isinstance(listed, dict) else listed[0]
    assert row["name"] == "plc-1" and row["status"]["accepted"] == 42 and row["status"]["last_error"] == "timeout"


def test_invalid_config_is_refused_with_the_reason(api_client):
    bad = {**MODBUS, "registers": [{"tag": "x", "address": 0, "table": "coil", "dtype": "int16"}]}
    response = api_client.post("/api/v1/connectors/", {"name": "plc-2", "kind": "modbus", "config": bad}, format="json")
    assert response.status_code == 400
    assert "registers[0]" in response.json()["detail"]["config"][0] and "bits" in response.json()["detail"]["config"][0]


def test_unknown_config_key_is_refused(api_client):
    response = api_client.post(
        "/api/v1/connectors/", {"name": "plc-3", "kind": "modbus", "config": {**MODBUS, "prot": 1}}, format="json"
    )
    assert response.status_code == 400 and "prot" in response.json()["detail"]["config"][0]


def test_disable_through_the_api(api_client):
    ConnectorDefinition.objects.create(name="plc-4", kind="modbus", config=MODBUS)
    response = api_client.patch("/api/v1/connectors/plc-4/", {"enabled": False}, format="json")
    assert response.status_code == 200 and ConnectorDefinition.objects.get(name="plc-4").enabled is False
