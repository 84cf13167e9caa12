"""Standard Webhooks signing: the spec's published test vector, and secrets checked."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crm_sync.signing import SecretError, check_secret, new_secret, signed_headers
from tests.support.fakes.webhook_receiver import reference_signature, verify

# The test vector of the Standard Webhooks reference libraries (and Svix's).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_published_test_vector() -> None:
    at = datetime.fromtimestamp(TIMESTAMP, UTC)
    headers = signed_headers(SECRET, MSG_ID, at, BODY)
    assert headers == {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(TIMESTAMP),
        "webhook-signature": EXPECTED,
    }
    # The test receiver's own arithmetic agrees (it is what the delivery tests trust).
    assert reference_signature(SECRET, MSG_ID, str(TIMESTAMP), BODY) == EXPECTED
    assert verify(SECRET, headers, BODY, now=TIMESTAMP + 60)
    assert not verify(SECRET, headers, BODY + b" ", now=TIMESTAMP + 60)
    assert not verify(SECRET, headers, BODY, now=TIMESTAMP + 301)  # stale


def test_secrets_must_be_whsec_base64_of_24_bytes_or_more() -> None:
    assert check_secret(SECRET) == SECRET
    assert check_secret(new_secret()).startswith("whsec_")
    for bad in ("", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!", "whsec_c2hvcnQ="):
        with pytest.raises(SecretError):
            check_secret(bad)
