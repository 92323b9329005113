"""The reference receiver refuses unsigned, forged and stale calls with clear 4xx answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import requests

from phm.alarms.models import new_webhook_secret
from phm.alarms.receiver import WebhookReceiver
from phm.alarms.signing import signed_headers


def test_unsigned_call_is_401():
    with WebhookReceiver(new_webhook_secret()) as receiver:
        response = requests.post(receiver.url, data=b'{"type": "test"}', timeout=5)
    assert response.status_code == 401 and "Missing required headers" in response.text
    assert receiver.state.accepted == []


def test_call_signed_with_another_secret_is_401():
    with WebhookReceiver(new_webhook_secret()) as receiver:
        body = '{"type": "test"}'
        response = requests.post(receiver.url, data=body, headers=signed_headers(secret=new_webhook_secret(), message_id="msg_x", body=body), timeout=5)
    assert response.status_code == 401 and "No matching signature" in response.text


def test_stale_call_is_400():
    secret = new_webhook_secret()
    with WebhookReceiver(secret) as receiver:
        body = '{"type": "test"}'
        stale = datetime.now(UTC) - timedelta(minutes=6)
        response = requests.post(receiver.url, data=body, headers=signed_headers(secret=secret, message_id="msg_x", body=body, at=stale), timeout=5)
    assert response.status_code == 400 and "too old" in response.text


def test_same_webhook_id_is_accepted_once():
    secret = new_webhook_secret()
    with WebhookReceiver(secret) as receiver:
        body = '{"type": "test"}'
        for _ in range(3):
            requests.post(receiver.url, data=body, headers=signed_headers(secret=secret, message_id="msg_same", body=body), timeout=5)
    assert receiver.state.ids() == ["msg_same"] and receiver.state.duplicates == ["msg_same", "msg_same"]
