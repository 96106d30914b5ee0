"""`Idempotency-Key` on create: one key and body, one Gladia session, however often it is sent.

A claim is a Redis hash `broker:{<subject>}:idem:<hash of the key>` (named in `broker.store.keys`,
TTL `BROKER_IDEMPOTENCY_TTL_S`) moving through `pending` → `done` (the session id), or `unknown`
(Gladia may hold a session the client never received), or `spent` (it did, and the key cannot be
replayed). A definite failure deletes the claim so the same key may be sent again. Requests that
find a claim `pending` wait for it; a claim left `pending` past Gladia's deadline (its instance
died) or `unknown` past a short grace is taken over by the next request, which reconciles the
earlier attempt through Gladia's list filtered by `custom_metadata` before any new create.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Literal

import redis.asyncio as redis
from starlette.datastructures import Headers

from broker.errors import Conflict, FieldProblem, InvalidFields
from broker.settings import Settings
from broker.store.keys import idempotency_claim_key
from broker.store.scripts import NOW_MS, LuaFunction, LuaScript

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# After Gladia's deadline, how long an attempt's outcome may still settle before a retry reconciles.
GRACE_S = 2.0
_POLL_FIRST_S = 0.01
_POLL_MAX_S = 0.2

Settlement = Literal["done", "unknown", "spent", "abandon"]

# keys: the claim. argv: fingerprint, token, request id, TTL ms, pending patience ms, unknown
# patience ms. Returns {outcome, detail}.
_CLAIM = LuaFunction(
    "claim",
    """
local function claim(keys, argv)
  local now = now_ms()
  local state = redis.call('HGET', keys[1], 'state')
  if not state then
    redis.call('HSET', keys[1], 'fp', argv[1], 'state', 'pending', 'token', argv[2],
               'rid', argv[3], 'since', now)
    redis.call('PEXPIRE', keys[1], argv[4])
    return {'claimed', ''}
  end
  if redis.call('HGET', keys[1], 'fp') ~= argv[1] then return {'mismatch', ''} end
  if state == 'done' then return {'done', redis.call('HGET', keys[1], 'sid')} end
  if state == 'spent' then return {'spent', ''} end
  if redis.call('HGET', keys[1], 'token') == argv[2] then return {'claimed', ''} end
  local since = tonumber(redis.call('HGET', keys[1], 'since'))
  local patience = tonumber(argv[5])
  if state == 'unknown' then patience = tonumber(argv[6]) end
  if now - since < patience then return {'wait', tostring(since + patience - now)} end
  local previous = redis.call('HGET', keys[1], 'rid')
  redis.call('HSET', keys[1], 'state', 'pending', 'token', argv[2], 'rid', argv[3], 'since', now)
  return {'takeover', previous}
end
""",
    keys=1,
    args=6,
    calls=(NOW_MS,),
)

# keys: the claim. argv: token, settlement, session id (done) or request id (unknown).
_SETTLE = LuaFunction(
    "settle",
    """
local function settle(keys, argv)
  local now = now_ms()
  if redis.call('HGET', keys[1], 'token') ~= argv[1] then return 0 end
  if argv[2] == 'abandon' then
    redis.call('DEL', keys[1])
    return 1
  end
  redis.call('HSET', keys[1], 'state', argv[2], 'since', now)
  if argv[2] == 'done' then redis.call('HSET', keys[1], 'sid', argv[3]) end
  if argv[2] == 'unknown' then redis.call('HSET', keys[1], 'rid', argv[3]) end
  return 1
end
""",
    keys=1,
    args=3,
    calls=(NOW_MS,),
)

# keys: the claim. argv: token. Restarts the claim's clock, while it is still this request's.
_RENEW_CLAIM = LuaFunction(
    "renew_claim",
    """
local function renew_claim(keys, argv)
  local now = now_ms()
  if redis.call('HGET', keys[1], 'token') ~= argv[1] then return 0 end
  redis.call('HSET', keys[1], 'since', now)
  return 1
end
""",
    keys=1,
    args=1,
    calls=(NOW_MS,),
)


@dataclass(frozen=True)
class Claim:
    """This request owns the key: it creates, then settles the claim."""

    key: str
    token: str
    request_id: str
    # An earlier attempt with an unknown outcome, to reconcile before creating.
    previous_request_id: str | None


@dataclass(frozen=True)
class Replay:
    """The key already created this session."""

    session_id: str


def idempotency_key_of(headers: Headers) -> str | None:
    """The request's one `Idempotency-Key`, unchecked; sent more than once, a 422 naming it."""
    values = headers.getlist(IDEMPOTENCY_HEADER)
    if len(values) > 1:
        raise InvalidFields(
            f"{IDEMPOTENCY_HEADER} must be sent once",
            problems=(FieldProblem(IDEMPOTENCY_HEADER, "must be sent once"),),
        )
    return values[0] if values else None


def validate_key(value: str) -> str:
    """The header's value, or a 422 naming it: 1 to 255 printable ASCII characters."""
    if not 1 <= len(value) <= MAX_KEY_LENGTH or not all(" " <= c <= "~" for c in value):
        raise InvalidFields(
            f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
            problems=(FieldProblem(IDEMPOTENCY_HEADER, "must be 1 to 255 printable characters"),),
        )
    return value


def fingerprint(client_body: object, region: str | None) -> str:
    """What makes two creates the same request: the body as sent (canonical) and the region."""
    canonical = json.dumps(
        {"body": client_body, "region": region},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class Idempotency:
    """Claims on idempotency keys, shared by every instance through Redis."""

    def __init__(self, client: redis.Redis, settings: Settings, *, grace_s: float = GRACE_S):
        self._ttl_ms = settings.idempotency_ttl_s * 1000
        # A pending claim older than Gladia's deadline plus the grace has lost its owner.
        self._pending_patience_ms = int((settings.gladia_total_timeout_s + grace_s) * 1000)
        self._unknown_patience_ms = int(grace_s * 1000)
        self._wait_s = settings.gladia_total_timeout_s + 2 * grace_s
        self._retry_after_s = settings.retry_after_s
        self._claim = LuaScript(client, _CLAIM)
        self._settle = LuaScript(client, _SETTLE)
        self._renew = LuaScript(client, _RENEW_CLAIM)

    async def begin(
        self, subject_key: str, idempotency_key: str, request_fingerprint: str, request_id: str
    ) -> Claim | Replay:
        """Claim the key, or find what it created; waits while another request holds it."""
        key = idempotency_claim_key(subject_key, idempotency_key)
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self._wait_s
        pause_s = _POLL_FIRST_S
        while True:
            outcome, detail = await self._claim(
                keys=[key],
                args=[
                    request_fingerprint,
                    token,
                    request_id,
                    self._ttl_ms,
                    self._pending_patience_ms,
                    self._unknown_patience_ms,
                ],
            )
            if outcome == "claimed":
                return Claim(key, token, request_id, previous_request_id=None)
            if outcome == "takeover":
                return Claim(key, token, request_id, previous_request_id=str(detail))
            if outcome == "done":
                return Replay(session_id=str(detail))
            if outcome == "mismatch":
                raise InvalidFields(
                    f"This {IDEMPOTENCY_HEADER} was used with a different request",
                    problems=(
                        FieldProblem(IDEMPOTENCY_HEADER, "was already used with another body"),
                    ),
                )
            if outcome == "spent":
                raise Conflict(
                    "Gladia created a session for an earlier attempt with this "
                    f"{IDEMPOTENCY_HEADER}, but its answer was lost; the session was discarded. "
                    f"Send the request again with a new {IDEMPOTENCY_HEADER}"
                )
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise Conflict(
                    f"A request with this {IDEMPOTENCY_HEADER} is still in progress",
                    retry_after_s=self._retry_after_s,
                )
            hint_s = int(detail) / 1000 if str(detail).isdigit() else pause_s
            await asyncio.sleep(max(0.001, min(pause_s, hint_s, remaining_s)))
            pause_s = min(pause_s * 2, _POLL_MAX_S)

    async def renew(self, claim: Claim) -> None:
        """Restart the claim's clock just before Gladia is called; Conflict if it was taken over.

        A takeover waits for Gladia's deadline plus a grace counted from this moment, so it can
        never reconcile (and create again) while this request's create is still in flight.
        """
        if not await self._renew(keys=[claim.key], args=[claim.token]):
            raise Conflict(
                f"A newer request with this {IDEMPOTENCY_HEADER} took over",
                retry_after_s=self._retry_after_s,
            )

    async def settle(self, claim: Claim, settlement: Settlement, value: str = "") -> bool:
        """Record how the claim's create ended; False when another request took it over."""
        settled = await self._settle(keys=[claim.key], args=[claim.token, settlement, value])
        return bool(settled)
