"""What Gladia posts to the broker, and the capability URLs its callbacks are sent to.

Gladia does not sign per-session callbacks, so each session's `callback_config.url` carries a
capability: an itsdangerous token with its own salt naming the owner's key and the broker's
request id of the create. The request id, not the session id, because the URL is part of the
create body and Gladia only names the session in its answer; the session's record keeps the
request id, and each delivery's `id` must name the record of the capability's request id.
"""

from __future__ import annotations

import hmac
import re
import time
from dataclasses import dataclass
from typing import Any

import orjson
from itsdangerous import BadData, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode, int_to_bytes
from starlette.datastructures import Secret

from broker.bounded_json import loads_bounded
from broker.errors import BadRequest, NotFound
from broker.settings import CALLBACK_CATEGORIES

CAPABILITY_SALT = "broker.gladia-callback.v1"
VERIFIED_CACHE_SIZE = 4096
CALLBACK_PATH = "/v1/callbacks/"

# Every live callback Gladia documents, plus `live.error` (undocumented, sent by the simulator).
CALLBACK_EVENTS = frozenset(
    {
        "live.transcript",
        "live.speech_start",
        "live.speech_end",
        "live.translation",
        "live.named_entity_recognition",
        "live.sentiment_analysis",
        "live.post_transcript",
        "live.post_final_transcript",
        "live.post_summarization",
        "live.post_chapterization",
        "live.audio_chunk",
        "live.stop_recording",
        "live.start_session",
        "live.start_recording",
        "live.end_recording",
        "live.end_session",
        "live.error",
    }
)
# Account webhooks for live sessions; pre-recorded ones (`transcription.*`) are not ours.
WEBHOOK_EVENTS = frozenset(
    {"live.start_session", "live.start_recording", "live.end_recording", "live.end_session"}
)
_HEX_ID = re.compile(r"^[0-9a-f]{32}$")
_SESSION_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


@dataclass(frozen=True)
class CallbackBinding:
    """Whose create a capability was minted for: the owner's key and the broker's request id."""

    owner: str
    request_id: str


@dataclass(frozen=True)
class Delivery:
    """One event Gladia sent about one session, by callback or by webhook."""

    session_id: str
    event: str
    payload: dict[str, Any]
    source: str


class CallbackCapabilities:
    """Mints and verifies the capabilities in callback URLs (keys in rotation order)."""

    def __init__(
        self,
        secret_keys: tuple[Secret, ...],
        max_age_s: int,
        public_url: str | None,
        categories: tuple[str, ...],
    ) -> None:
        # Settings list the signing key first; itsdangerous signs with the last of its list.
        keys = [str(key) for key in reversed(secret_keys)]
        self._serializer = URLSafeTimedSerializer(keys, salt=CAPABILITY_SALT)
        # What `self._serializer.dumps` signs with, derived once rather than on every mint.
        signer = self._serializer.make_signer()
        self._signing_mac = hmac.new(signer.derive_key(), digestmod=signer.digest_method)
        self._flags = {
            f"receive_{category}": category in categories for category in CALLBACK_CATEGORIES
        }
        self._max_age_s = max_age_s
        self._public_url = public_url
        # Lives and dies with this key list, as TokenService's cache does (test_capabilities.py).
        self._verified: dict[str, tuple[CallbackBinding, float]] = {}

    @property
    def enabled(self) -> bool:
        """Callbacks are requested only when Gladia has a public URL to reach the broker at."""
        return self._public_url is not None

    def mint(self, binding: CallbackBinding) -> str:
        """What `self._serializer.dumps([owner, request_id])` writes without trying zlib first,
        byte for byte, at a fifth of its cost: itsdangerous builds a signer and derives its key
        on every call, and writes its JSON with json (orjson writes the same for two ids).
        Compressing two ids saved one byte of 71, and zlib was most of a mint's CPU
        (docs/performance.md); `verify` reads compressed payloads still, so every capability
        minted before stays valid."""
        payload = base64_encode(orjson.dumps([binding.owner, binding.request_id]))
        signed = payload + b"." + base64_encode(int_to_bytes(int(time.time())))
        mac = self._signing_mac.copy()
        mac.update(signed)
        return (signed + b"." + base64_encode(mac.digest())).decode("ascii")

    def verify(self, capability: str) -> CallbackBinding:
        """The binding a capability was minted for; 404 when it is not one of ours or expired."""
        now = time.time()
        cached = self._verified.get(capability)
        if cached is not None and now < cached[1]:
            return cached[0]
        try:
            value, signed_at = self._serializer.loads(
                capability, max_age=self._max_age_s, return_timestamp=True
            )
        except BadData:
            raise NotFound() from None
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(item, str) and _HEX_ID.match(item) for item in value)
        ):
            raise NotFound()
        binding = CallbackBinding(owner=value[0], request_id=value[1])
        # A session's callbacks all carry the same capability: verified once per instance, kept
        # (bounded) until the moment it would have expired anyway.
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))
        self._verified[capability] = (binding, signed_at.timestamp() + self._max_age_s)
        return binding

    def callback_config(self, owner: str, request_id: str) -> dict[str, Any]:
        """The `callback` and `callback_config` fields of one create body (every flag explicit)."""
        if self._public_url is None:
            return {}
        capability = self.mint(CallbackBinding(owner, request_id))
        config = {"url": f"{self._public_url}{CALLBACK_PATH}{capability}", **self._flags}
        return {"callback": True, "callback_config": config}


def _json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object no deeper than the store keeps, or a 400 saying what is wrong."""
    try:
        value = loads_bounded(body.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError is one
        raise BadRequest("The body is not a JSON object") from None
    if not isinstance(value, dict):
        raise BadRequest("The body is not a JSON object")
    return value


def _session_id(value: object) -> str:
    if not isinstance(value, str) or not _SESSION_ID.match(value):
        raise BadRequest("id must be a session id")
    return value


def parse_callback(body: bytes) -> Delivery:
    """A callback body `{id, event, payload}`, checked for shape and event name."""
    value = _json_object(body)
    event, payload = value.get("event"), value.get("payload")
    if event not in CALLBACK_EVENTS:
        raise BadRequest("event is not a live callback event")
    if not isinstance(payload, dict):
        raise BadRequest("payload must be an object")
    return Delivery(_session_id(value.get("id")), str(event), payload, "callback")


def parse_webhook(body: bytes) -> Delivery | None:
    """A webhook body `{event, payload: {id}}`; None for events that are not about live sessions."""
    value = _json_object(body)
    event, payload = value.get("event"), value.get("payload")
    if event not in WEBHOOK_EVENTS:
        return None
    if not isinstance(payload, dict):
        raise BadRequest("payload must be an object")
    session_id = _session_id(payload.get("id"))
    return Delivery(session_id, event, {"id": session_id}, "webhook")
