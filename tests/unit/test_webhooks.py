"""Standard Webhooks signing and verification, checked against the reference library."""

import base64
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook
from starlette.datastructures import Secret

from broker.errors import MalformedWebhook, UnverifiedWebhook, WebhookRejected
from broker.events.webhooks import WebhookVerifier, secret_key, sign, signed_headers

# The Svix documentation's test vector (security notes §1.4).
DOC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DOC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
DOC_TIMESTAMP = 1614265330
DOC_BODY = b'{"test": 2432232314}'
DOC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
OTHER_SECRET = "whsec_" + base64.b64encode(b"another-secret-of-32-bytes-long!").decode()


def doc_headers(prefix: str = "svix", signature: str = DOC_SIGNATURE) -> dict[str, str]:
    return {
        f"{prefix}-id": DOC_ID,
        f"{prefix}-timestamp": str(DOC_TIMESTAMP),
        f"{prefix}-signature": signature,
    }


def verifier(*secrets: str) -> WebhookVerifier:
    return WebhookVerifier(tuple(Secret(secret) for secret in secrets))


def test_the_documented_vector_signs_to_the_documented_signature() -> None:
    assert sign(secret_key(DOC_SECRET), DOC_ID, DOC_TIMESTAMP, DOC_BODY) == DOC_SIGNATURE


@pytest.mark.parametrize("prefix", ["svix", "webhook"])
def test_the_documented_vector_verifies_under_either_header_name(prefix: str) -> None:
    assert verifier(DOC_SECRET).verify(doc_headers(prefix), DOC_BODY, DOC_TIMESTAMP) == DOC_ID


def test_any_of_several_signatures_and_any_trusted_secret_verifies() -> None:
    stale = sign(secret_key(OTHER_SECRET), DOC_ID, DOC_TIMESTAMP, DOC_BODY)
    headers = doc_headers(signature=f"v1a,ignored {stale} {DOC_SIGNATURE}")
    assert verifier(OTHER_SECRET, DOC_SECRET).verify(headers, DOC_BODY, DOC_TIMESTAMP) == DOC_ID
    assert verifier(DOC_SECRET, OTHER_SECRET).verify(headers, DOC_BODY, DOC_TIMESTAMP) == DOC_ID


@pytest.mark.parametrize("skew_s", [-301, 301, -6 * 60, 6 * 60])
def test_a_timestamp_beyond_five_minutes_either_way_is_refused(skew_s: int) -> None:
    with pytest.raises(UnverifiedWebhook):
        verifier(DOC_SECRET).verify(doc_headers(), DOC_BODY, DOC_TIMESTAMP + skew_s)


@pytest.mark.parametrize("skew_s", [-300, 300])
def test_a_timestamp_at_the_edge_of_the_window_is_accepted(skew_s: int) -> None:
    assert verifier(DOC_SECRET).verify(doc_headers(), DOC_BODY, DOC_TIMESTAMP + skew_s) == DOC_ID


@pytest.mark.parametrize(
    "body",
    [b'{"test":2432232314}', b'{"test": 2432232315}', DOC_BODY + b" "],
    ids=["re-serialised", "changed", "padded"],
)
def test_any_other_body_is_refused(body: bytes) -> None:
    with pytest.raises(UnverifiedWebhook):
        verifier(DOC_SECRET).verify(doc_headers(), body, DOC_TIMESTAMP)


def test_a_signature_of_another_message_id_is_refused() -> None:
    headers = doc_headers()
    headers["svix-id"] = "msg_another"
    with pytest.raises(UnverifiedWebhook):
        verifier(DOC_SECRET).verify(headers, DOC_BODY, DOC_TIMESTAMP)


def test_an_untrusted_secret_is_refused() -> None:
    with pytest.raises(UnverifiedWebhook):
        verifier(OTHER_SECRET).verify(doc_headers(), DOC_BODY, DOC_TIMESTAMP)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"svix-id": DOC_ID, "svix-timestamp": str(DOC_TIMESTAMP)},
        {**doc_headers(), "svix-timestamp": "1614265330.5"},
        {**doc_headers(), "svix-timestamp": "-1614265330"},
        {**doc_headers(), "svix-id": "msg.with.dots"},
        {**doc_headers(), "svix-signature": "v1," + "A" * 5000},
    ],
    ids=["none", "no-signature", "fraction", "negative", "dotted-id", "huge"],
)
def test_malformed_headers_are_refused_as_bad_requests(headers: dict[str, str]) -> None:
    with pytest.raises(MalformedWebhook) as refused:
        verifier(DOC_SECRET).verify(headers, DOC_BODY, DOC_TIMESTAMP)
    assert refused.value.status_code == 400


@pytest.mark.parametrize("signature", ["garbage", "v1,", "v1,not base64!", "v1,====", ",,,", " "])
def test_garbage_signatures_that_break_the_reference_library_are_a_plain_401(
    signature: str,
) -> None:
    with pytest.raises(UnverifiedWebhook) as refused:
        verifier(DOC_SECRET).verify(doc_headers(signature=signature), DOC_BODY, DOC_TIMESTAMP)
    assert refused.value.status_code == 401


@settings(max_examples=300, deadline=None)
@given(
    headers=st.dictionaries(
        st.sampled_from(["svix-id", "svix-timestamp", "svix-signature", "webhook-id"]),
        st.text(max_size=80),
    ),
    body=st.binary(max_size=64),
)
def test_whatever_the_headers_hold_only_a_rejection_is_raised(
    headers: dict[str, str], body: bytes
) -> None:
    with pytest.raises(WebhookRejected):
        verifier(DOC_SECRET).verify(headers, body, DOC_TIMESTAMP)


def test_what_we_sign_the_reference_library_verifies() -> None:
    body = b'{"type":"live.transcript","payload":{"text":"hello"}}'
    now = int(datetime.now(UTC).timestamp())
    headers = signed_headers(secret_key(OTHER_SECRET), "sess_1795596588124-0", now, body)
    assert Webhook(OTHER_SECRET).verify(body, headers) == {
        "type": "live.transcript",
        "payload": {"text": "hello"},
    }


def test_what_the_reference_library_signs_we_verify() -> None:
    body = '{"event":"live.end_session","payload":{"id":"abc"}}'
    now = datetime.now(UTC)
    headers = {
        "webhook-id": "msg_2",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(DOC_SECRET).sign("msg_2", now, body),
    }
    assert verifier(DOC_SECRET).verify(headers, body.encode(), now.timestamp()) == "msg_2"
