"""Standard Webhooks signatures (https://www.standardwebhooks.com), via the reference
``standardwebhooks`` package: ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``
with a ``whsec_``-prefixed base64 secret. Receivers dedupe on ``webhook-id``, which stays the
same across retries of one message."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

__all__ = ["WebhookVerificationError", "signed_headers", "validate_secret", "verify"]


def validate_secret(secret: str) -> str:
    """Raise ValueError saying what is wrong unless ``secret`` is 'whsec_' + base64 of 24..64 bytes."""
    if not isinstance(secret, str) or not secret.startswith("whsec_"):
        raise ValueError("secret must start with 'whsec_' (Standard Webhooks format)")
    try:
        raw = base64.b64decode(secret[len("whsec_") :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("secret after 'whsec_' must be base64") from None
    if not 24 <= len(raw) <= 64:
        raise ValueError(f"secret must encode 24 to 64 bytes, got {len(raw)}")
    return secret


def signed_headers(*, secret: str, message_id: str, body: str, at: datetime | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers (plus content type) for one request body."""
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id=message_id, timestamp=at, data=body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def verify(*, secret: str, body: bytes | str, headers: Mapping[str, str]) -> object:
    """Receiver side: return the parsed JSON body, or raise WebhookVerificationError saying why
    (missing headers, timestamp outside ±5 min, no matching signature)."""
    return Webhook(secret).verify(body, dict(headers))
