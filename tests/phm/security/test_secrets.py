"""Finding 4 of issue 19: secrets are write-only. A connector's broker password, a webhook's
signing secret: never in an API response or an admin page, never in a log line or status; an
update without them keeps the stored value."""

from __future__ import annotations

import json
import logging

import pytest

from connectors.mqtt import BrokerConfig
from phm.alarms.models import WebhookEndpoint, new_webhook_secret
from phm.sources.models import ConnectorDefinition
from phm.sources.secrets import MASK
from tests.conftest import user_in_role

pytestmark = pytest.mark.django_db
PASSWORD = "mqtt-Pa55-word-7731"
MQTT = {"broker": {"host": "10.0.0.5", "username": "phm", "password": PASSWORD}, "mappings": [{"topic": "plant/+/temp", "tag": "{levels[1]}.TEMP"}]}


@pytest.fixture
def mqtt_connector(engineer_client):
    response = engineer_client.post("/api/v1/connectors/", {"name": "mqtt-north", "kind": "mqtt_json", "config": MQTT}, format="json")
    assert response.status_code == 201, response.content
    assert PASSWORD not in response.content.decode()
    return ConnectorDefinition.objects.get(name="mqtt-north")


def stored_password() -> str | None:
    return ConnectorDefinition.objects.get(name="mqtt-north").config["broker"].get("password")


@pytest.mark.parametrize("reader", ["operator_client", "engineer_client"])
def test_connector_password_is_never_returned(request, mqtt_connector, reader):
    client = request.getfixturevalue(reader)
    for path in ("/api/v1/connectors/mqtt-north", "/api/v1/connectors/", "/api/v1/connectors/?kind=mqtt_json"):
        response = client.get(path)
        assert response.status_code == 200 and PASSWORD not in response.content.decode(), path
    detail = client.get("/api/v1/connectors/mqtt-north").json()
    assert detail["config"]["broker"]["password"] == MASK and detail["config"]["broker"]["username"] == "phm"
    assert stored_password() == PASSWORD


def test_an_update_without_the_password_keeps_it(engineer_client, mqtt_connector):
    config = {"broker": {"host": "10.0.0.6", "username": "phm"}, "mappings": MQTT["mappings"]}
    response = engineer_client.patch("/api/v1/connectors/mqtt-north", {"config": config}, format="json")
    assert response.status_code == 200, response.content
    assert stored_password() == PASSWORD and ConnectorDefinition.objects.get().config["broker"]["host"] == "10.0.0.6"


def test_sending_the_mask_back_keeps_it_and_a_new_value_replaces_it(engineer_client, mqtt_connector):
    shown = engineer_client.get("/api/v1/connectors/mqtt-north").json()["config"]
    assert engineer_client.put("/api/v1/connectors/mqtt-north", {"name": "mqtt-north", "kind": "mqtt_json", "config": shown}, format="json").status_code == 200
    assert stored_password() == PASSWORD
    shown["broker"]["password"] = "rotated-2"
    response = engineer_client.patch("/api/v1/connectors/mqtt-north", {"config": shown}, format="json")
    assert response.status_code == 200 and "rotated-2" not in response.content.decode() and stored_password() == "rotated-2"


def test_null_removes_the_password(engineer_client, mqtt_connector):
    config = {"broker": {"host": "10.0.0.5", "password": None}, "mappings": MQTT["mappings"]}
    assert engineer_client.patch("/api/v1/connectors/mqtt-north", {"config": config}, format="json").status_code == 200
    assert stored_password() is None


def test_the_mask_is_no_password(engineer_client):
    config = {**MQTT, "broker": {**MQTT["broker"], "password": MASK}}
    response = engineer_client.post("/api/v1/connectors/", {"name": "new", "kind": "mqtt_json", "config": config}, format="json")
    assert response.status_code == 400 and "config.broker.password" in response.json()["detail"]["config"][0]


def test_admin_form_masks_the_password_and_keeps_it_on_save(client, mqtt_connector):
    client.force_login(user_in_role("root", "superuser"))
    url = f"/admin/sources/connectordefinition/{mqtt_connector.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200 and PASSWORD not in page.content.decode() and MASK in page.content.decode()
    form = {"name": "mqtt-north", "kind": "mqtt_json", "config": json.dumps({**MQTT, "broker": {**MQTT["broker"], "password": MASK}}),
            "enabled": "on", "description": "", "status-TOTAL_FORMS": "0", "status-INITIAL_FORMS": "0", "status-MIN_NUM_FORMS": "0", "status-MAX_NUM_FORMS": "1"}
    saved = client.post(url, form)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert stored_password() == PASSWORD


def test_broker_password_is_not_in_its_repr_or_the_connector_logs(caplog):
    assert PASSWORD not in repr(BrokerConfig(host="10.0.0.5", password=PASSWORD))
    from phm.sources.registry import build_connector
    from connectors.sink import MemorySink

    with caplog.at_level(logging.DEBUG):
        connector = build_connector(name="mqtt-north", kind="mqtt_json", config=MQTT, sink=MemorySink())
        connector.note_error(f"cannot connect with {connector.broker}")
    assert PASSWORD not in caplog.text and PASSWORD not in json.dumps(connector.status().as_dict(), default=str)


def test_webhook_secret_is_write_only(engineer_client, operator_client):
    secret = new_webhook_secret()
    created = engineer_client.post("/api/v1/webhooks", {"url": "https://93.184.216.34/hook", "secret": secret}, format="json")
    assert created.status_code == 201 and secret not in created.content.decode() and created.json()["has_secret"] is True
    hook = created.json()["id"]
    for client in (engineer_client, operator_client):
        for path in ("/api/v1/webhooks", f"/api/v1/webhooks/{hook}"):
            assert secret not in client.get(path).content.decode()
    assert engineer_client.patch(f"/api/v1/webhooks/{hook}", {"description": "SCADA north"}, format="json").status_code == 200
    assert WebhookEndpoint.objects.get().secret == secret


def test_a_generated_webhook_secret_is_shown_once(engineer_client):
    created = engineer_client.post("/api/v1/webhooks", {"url": "https://93.184.216.34/hook"}, format="json").json()
    stored = WebhookEndpoint.objects.get().secret
    assert created["secret"] == stored
    assert stored not in engineer_client.get(f"/api/v1/webhooks/{created['id']}").content.decode()


def test_api_tokens_are_shown_once_in_the_admin(client):
    from rest_framework.authtoken.models import Token

    scada = user_in_role("scada-pull", "operator")
    existing = Token.objects.create(user=user_in_role("historian", "engineer"))
    client.force_login(user_in_role("root", "superuser"))
    listing = client.get("/admin/authtoken/tokenproxy/").content.decode()
    assert existing.key not in listing and existing.key[:4] in listing
    created = client.post("/admin/authtoken/tokenproxy/add/", {"user": scada.pk}, follow=True).content.decode()
    key = Token.objects.get(user=scada).key
    assert key in created  # once, in the message after creating it
    for path in ("/admin/authtoken/tokenproxy/", f"/admin/authtoken/tokenproxy/{scada.pk}/change/", f"/admin/authtoken/tokenproxy/{scada.pk}/delete/"):
        assert key not in client.get(path).content.decode(), path


def test_a_password_in_a_webhook_url_is_write_only(engineer_client, operator_client):
    url = "https://scada:url-Pa55@93.184.216.34/hook"
    created = engineer_client.post("/api/v1/webhooks", {"url": url, "secret": new_webhook_secret()}, format="json")
    assert created.status_code == 201 and "url-Pa55" not in created.content.decode()
    hook = created.json()["id"]
    shown = operator_client.get(f"/api/v1/webhooks/{hook}").json()["url"]
    assert shown == f"https://scada:{MASK}@93.184.216.34/hook"
    assert engineer_client.patch(f"/api/v1/webhooks/{hook}", {"url": shown, "description": "north"}, format="json").status_code == 200
    assert WebhookEndpoint.objects.get().url == url


def test_the_connectors_page_and_the_browsable_api_do_not_show_the_password(client, mqtt_connector):
    client.force_login(user_in_role("eng-page", "engineer"))
    page = client.get("/connectors/")
    assert page.status_code == 200 and "mqtt-north" in page.content.decode() and PASSWORD not in page.content.decode()
    browsable = client.get("/api/v1/connectors/mqtt-north", HTTP_ACCEPT="text/html")
    assert browsable.status_code == 200 and PASSWORD not in browsable.content.decode()
