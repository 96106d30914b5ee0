"""Standard Webhooks (and Svix, its origin): signing and verifying, on the raw body.

The scheme: `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, the key being the
base64 part of a `whsec_` secret. Verification accepts `webhook-*` and `svix-*` headers, several
signatures in one header (a sender rotating its secret signs with both), a list of our own
secrets (we rotate too), and timestamps within five minutes either way; every comparison is
constant-time and nothing a sender puts in a header can make it raise anything but WebhookRejected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping

from starlette.datastructures import Secret

from broker.errors import (
    MalformedWebhook,
    UnverifiedWebhook,
)

TOLERANCE_S = 300
MAX_SIGNATURE_HEADER = 4096
MAX_SIGNATURES = 8
HEADER_PREFIXES = ("webhook", "svix")
# Ids and timestamps go into the signed content, joined by dots: neither may contain one.
_MESSAGE_ID = re.compile(r"^[A-Za-z0-9_:-]{1,128}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret; raises ValueError when it is not one."""
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not a base64 webhook secret") from None


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,…` signature of one delivery."""
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(key: bytes, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt of a delivery."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, message_id, timestamp, body),
    }


class WebhookVerifier:
    """Checks deliveries against a list of secrets (the newest first, older ones still trusted)."""

    def __init__(self, secrets: Iterable[Secret]) -> None:
        self._keys = [secret_key(str(secret)) for secret in secrets]

    @property
    def configured(self) -> bool:
        return bool(self._keys)

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> str:
        """The delivery's message id, once its signature and timestamp are proven."""
        message_id, timestamp, signatures = _read_headers(headers)
        if abs(now - int(timestamp)) > TOLERANCE_S:
            raise UnverifiedWebhook("The delivery's timestamp is outside the tolerance")
        signed = f"{message_id}.{timestamp}.".encode() + body
        expected = [hmac.new(key, signed, hashlib.sha256).digest() for key in self._keys]
        matched = False
        for offered in _signatures(signatures):
            # Every pair is compared, so timing says nothing about which key or entry matched.
            for digest in expected:
                matched |= hmac.compare_digest(offered, digest)
        if not matched:
            raise UnverifiedWebhook("The delivery's signature does not verify")
        return message_id


def _read_headers(headers: Mapping[str, str]) -> tuple[str, str, str]:
    for prefix in HEADER_PREFIXES:
        message_id = headers.get(f"{prefix}-id")
        if message_id is None:
            continue
        timestamp = headers.get(f"{prefix}-timestamp")
        signatures = headers.get(f"{prefix}-signature")
        if timestamp is None or signatures is None:
            raise MalformedWebhook("The delivery's signature headers are incomplete")
        if not _MESSAGE_ID.match(message_id):
            raise MalformedWebhook("The delivery's id is malformed")
        if not _TIMESTAMP.match(timestamp):
            raise MalformedWebhook("The delivery's timestamp is malformed")
        if len(signatures) > MAX_SIGNATURE_HEADER:
            raise MalformedWebhook("The delivery's signature header is too long")
        return message_id, timestamp, signatures
    raise MalformedWebhook("The delivery has no signature headers")


def _signatures(header: str) -> list[bytes]:
    """The decodable `v1` entries of a signature header; anything else is skipped."""
    found = []
    for entry in header.split(" ")[:MAX_SIGNATURES]:
        version, _, encoded = entry.partition(",")
        if version != "v1" or not encoded:
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found
