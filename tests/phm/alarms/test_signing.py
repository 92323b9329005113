"""Standard Webhooks signatures: the spec's published example, and the receiver's checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from phm.alarms.signing import WebhookVerificationError, signed_headers, validate_secret, verify

# The example from the Standard Webhooks specification and its reference libraries' tests.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = '{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signature_matches_the_spec_example():
    headers = signed_headers(secret=SPEC_SECRET, message_id=SPEC_ID, body=SPEC_BODY, at=datetime.fromtimestamp(SPEC_TIMESTAMP, UTC))
    assert headers["webhook-signature"] == SPEC_SIGNATURE
    assert headers["webhook-id"] == SPEC_ID and headers["webhook-timestamp"] == str(SPEC_TIMESTAMP)


def test_receiver_accepts_fresh_signed_body():
    headers = signed_headers(secret=SPEC_SECRET, message_id="msg_1", body='{"a": 1}')
    assert verify(secret=SPEC_SECRET, body=b'{"a": 1}', headers=headers) == {"a": 1}


def test_receiver_rejects_tampered_body():
    headers = signed_headers(secret=SPEC_SECRET, message_id="msg_1", body='{"a": 1}')
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        verify(secret=SPEC_SECRET, body=b'{"a": 2}', headers=headers)


def test_receiver_rejects_unsigned_request():
    with pytest.raises(WebhookVerificationError, match="Missing required headers"):
        verify(secret=SPEC_SECRET, body=b"{}", headers={"content-type": "application/json"})


def test_receiver_rejects_stale_timestamp():
    stale = datetime.now(UTC) - timedelta(minutes=10)
    headers = signed_headers(secret=SPEC_SECRET, message_id="msg_1", body="{}", at=stale)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(secret=SPEC_SECRET, body=b"{}", headers=headers)


@pytest.mark.parametrize(
    ("secret", "why"),
    [("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "start with 'whsec_'"), ("whsec_***", "base64"), ("whsec_YWJj", "24 to 64 bytes")],
)
def test_secret_format_is_checked(secret, why):
    with pytest.raises(ValueError, match=why):
        validate_secret(secret)
