"""The only code naming the Redis keys of callbacks, events, webhooks and background jobs.

Per-session keys share their owner's hash tag with the session record (`broker:{owner}:…`), so
one script can de-duplicate an event, append it to the session's stream and move the record's
status atomically, on Redis Cluster too. Background job queues share the `{jobs}` tag. Every key
has a TTL or is removed when its work is done.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any, cast

import redis.asyncio as redis

from broker.settings import Settings
from broker.store.records import record_key
from broker.store.scripts import LuaFunction, Step

# KEYS: record, stream, seen. ARGV: digest, status, is-end, event, source, received_at, payload.
# The __NAMES__ are this instance's settings, written into the script once.
_STORE_EVENT = """
local ranks = {created=0, recording=1, ended=2, done=3, error=3}
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown'} end
if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then return {'duplicate'} end
if redis.call('SCARD', KEYS[3]) >= __SEEN_CAP__ then return {'full'} end
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('EXPIRE', KEYS[3], __DEDUPE_TTL__)
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', __EVENTS_MAX__, '*',
  'event', ARGV[4], 'source', ARGV[5], 'received_at', ARGV[6], 'payload', ARGV[7])
redis.call('EXPIRE', KEYS[2], __STREAM_TTL__)
-- The record is one JSON string (store.py): move what changed, keep its TTL.
local record = cjson.decode(redis.call('GET', KEYS[1]))
local changed = false
if ARGV[2] ~= '' and (ranks[ARGV[2]] or 0) > (ranks[record['status']] or 0) then
  record['status'] = ARGV[2]
  changed = true
end
if ARGV[3] == '1' then
  record['ended_event'] = id
  changed = true
end
if changed then redis.call('SET', KEYS[1], cjson.encode(record), 'KEEPTTL') end
return {'stored', id}
"""

# A callback first proves its binding. KEYS 4, 5: binding, early buffer. ARGV 8: the body's
# session id. A validly signed capability without a binding belongs to a create still waiting
# for Gladia's answer (or one that failed): its deliveries are buffered, briefly and capped, as
# "session id, event, payload" lines, and checked against the session id when the binding is made.
_STORE_CALLBACK = (
    """
local bound = redis.call('HGET', KEYS[4], 'session_id')
if not bound then
  if redis.call('LLEN', KEYS[5]) >= __EARLY_MAX__ then return {'full'} end
  redis.call('RPUSH', KEYS[5], ARGV[8] .. '\\n' .. ARGV[4] .. '\\n' .. ARGV[7])
  redis.call('EXPIRE', KEYS[5], __EARLY_TTL__)
  return {'early'}
end
if bound ~= ARGV[8] then return {'mismatch'} end
"""
    + _STORE_EVENT
)

# keys: binding, early buffer. argv: session id, subject ('' unless the relay needs it), ttl.
# Returns the buffered bodies. Without the subject the hash is 200 bytes a session, not 232.
BIND_CALLBACKS = LuaFunction(
    "bind_callbacks",
    """
local function bind_callbacks(keys, argv)
  redis.call('HSET', keys[1], 'session_id', argv[1])
  if argv[2] ~= '' then redis.call('HSET', keys[1], 'subject', argv[2]) end
  redis.call('EXPIRE', keys[1], argv[3])
  local early = redis.call('LRANGE', keys[2], 0, -1)
  redis.call('DEL', keys[2])
  return early
end
""",
    keys=2,
    args=3,
)

# KEYS: due, generation. ARGV: member, now ms, ttl. A member already waiting keeps its time,
# so work in backoff stays in backoff; the generation says "there is more since you looked".
_MARK = """
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
"""

# KEYS: due, generation, tries. ARGV: member, the generation seen before the work started.
_FINISH = """
if (redis.call('HGET', KEYS[2], ARGV[1]) or '') ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
"""

# KEYS: due, tries. ARGV: member, now ms, base ms, max ms, jitter in [0, 1), ttl.
# Capped exponential backoff with equal jitter; XX: finished work is not revived.
_RETRY_LATER = """
local tries = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('EXPIRE', KEYS[2], ARGV[6])
local delay = math.min(tonumber(ARGV[3]) * 2 ^ math.min(tries - 1, 40), tonumber(ARGV[4]))
delay = delay * (0.5 + 0.5 * tonumber(ARGV[5]))
redis.call('ZADD', KEYS[1], 'XX', string.format('%.0f', tonumber(ARGV[2]) + delay), ARGV[1])
return tries
"""

_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""

WEBHOOK_DEFERRAL_TTL_S = 3600
# Early callbacks are kept as long as a create may wait for Gladia, and a margin.
EARLY_MARGIN_S = 60
EARLY_MAX = 32
SEEN_PER_EVENT_CAP = 4


class Outcome(Enum):
    """What storing one delivery did."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    EARLY = "early"
    UNKNOWN = "unknown"
    MISMATCH = "mismatch"
    FULL = "full"


@dataclass(frozen=True)
class Stored:
    outcome: Outcome
    event_id: str | None = None


@dataclass(frozen=True)
class EventFields:
    """One event as the stream keeps it."""

    digest: str
    event: str
    source: str
    received_at: str
    payload_json: str
    status: str | None
    is_end: bool


@dataclass(frozen=True)
class StreamEntry:
    id: str
    event: str
    source: str
    received_at: str
    payload: Any

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event": self.event,
            "source": self.source,
            "received_at": self.received_at,
            "payload": self.payload,
        }


@dataclass(frozen=True)
class EarlyDelivery:
    """A callback kept before its create's binding: the session id its body named, unchecked."""

    session_id: str
    event: str
    payload_json: str


@dataclass(frozen=True)
class Binding:
    session_id: str | None
    subject: str | None


def early_deliveries(bound: object) -> list[EarlyDelivery]:
    """What `bind_callbacks` returned: the deliveries buffered before the binding."""
    found = []
    for line in cast(list[Any], bound):
        claimed_id, event, payload_json = str(line).split("\n", 2)
        found.append(EarlyDelivery(claimed_id, event, payload_json))
    return found


def _with(script: str, constants: dict[str, int]) -> str:
    for name, value in constants.items():
        script = script.replace(name, str(int(value)))
    return script


def session_callback_keys(owner: str, request_id: str, session_id: str) -> tuple[str, str]:
    """The callback binding and the owner-for-webhooks key of a session, for audits and
    benchmarks (memory)."""
    return _binding_key(owner, request_id), _session_owner_key(session_id)


def _binding_key(owner: str, request_id: str) -> str:
    return f"broker:{{{owner}}}:callback:{request_id}"


def _early_key(owner: str, request_id: str) -> str:
    return f"broker:{{{owner}}}:callback-early:{request_id}"


def _stream_key(owner: str, session_id: str) -> str:
    return f"broker:{{{owner}}}:events:{session_id}"


def _seen_key(owner: str, session_id: str) -> str:
    return f"broker:{{{owner}}}:events-seen:{session_id}"


def _relay_cursor_key(owner: str, session_id: str) -> str:
    return f"broker:{{{owner}}}:relay-cursor:{session_id}"


def _session_owner_key(session_id: str) -> str:
    return f"broker:session-owner:{session_id}"


def _webhook_message_key(message_id: str) -> str:
    return f"broker:webhook-message:{message_id}"


def _webhook_deferral_key(message_id: str) -> str:
    return f"broker:webhook-deferred:{message_id}"


def _queue_key(queue: str, part: str) -> str:
    return f"broker:{{jobs}}:{queue}:{part}"


def _entry(raw_id: str, fields: dict[str, str]) -> StreamEntry:
    try:
        payload = json.loads(fields.get("payload", "null"))
    except ValueError:
        payload = None
    return StreamEntry(
        id=raw_id,
        event=fields.get("event", ""),
        source=fields.get("source", ""),
        received_at=fields.get("received_at", ""),
        payload=payload,
    )


def _now_ms() -> int:
    return int(time.time() * 1000)


class EventStore:
    """Bindings, event streams, de-duplication markers, and the background job queues."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self._redis = client
        self._callback_ttl_s = settings.callback_ttl_s
        self._early_ttl_s = int(settings.gladia_total_timeout_s) + EARLY_MARGIN_S
        self._dedupe_ttl_s = settings.dedupe_ttl_s
        self._events_max = settings.events_max
        # Events are kept as long as the session's result, and never less than a session.
        self._stream_ttl_s = max(settings.result_ttl_s, settings.session_ttl_s)
        self._queue_ttl_s = max(settings.result_ttl_s, settings.callback_ttl_s)
        constants = {
            "__SEEN_CAP__": self._events_max * SEEN_PER_EVENT_CAP,
            "__DEDUPE_TTL__": self._dedupe_ttl_s,
            "__EVENTS_MAX__": self._events_max,
            "__STREAM_TTL__": self._stream_ttl_s,
            "__EARLY_MAX__": EARLY_MAX,
            "__EARLY_TTL__": self._early_ttl_s,
        }
        self._store_event = client.register_script(_with(_STORE_EVENT, constants))
        self._store_callback = client.register_script(_with(_STORE_CALLBACK, constants))
        self._mark = client.register_script(_MARK)
        self._finish = client.register_script(_FINISH)
        self._retry_later = client.register_script(_RETRY_LATER)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    # --- bindings -------------------------------------------------------------------------

    def bind_step(self, owner: str, request_id: str, session_id: str, subject: str | None) -> Step:
        """The binding, to run in a script with other steps on the owner's slot; its result
        is read by `early_deliveries`. The user's id is kept only when given (the relay names
        it); the session's owner is noted apart (another slot)."""
        return Step(
            BIND_CALLBACKS,
            [_binding_key(owner, request_id), _early_key(owner, request_id)],
            [session_id, subject or "", self._callback_ttl_s],
        )

    async def note_session_owner(self, session_id: str, owner: str) -> None:
        """Who owns a session, for account webhooks, which name only the session."""
        await self._redis.set(_session_owner_key(session_id), owner, ex=self._callback_ttl_s)

    async def binding(self, owner: str, request_id: str) -> Binding:
        fields = cast(dict[str, str], await self._redis.hgetall(_binding_key(owner, request_id)))
        return Binding(fields.get("session_id"), fields.get("subject"))

    async def session_owner(self, session_id: str) -> str | None:
        owner = await self._redis.get(_session_owner_key(session_id))
        return str(owner) if owner is not None else None

    # --- events ---------------------------------------------------------------------------

    @staticmethod
    def _event_args(fields: EventFields) -> list[str]:
        return [
            fields.digest,
            fields.status or "",
            "1" if fields.is_end else "0",
            fields.event,
            fields.source,
            fields.received_at,
            fields.payload_json,
        ]

    def _event_keys(self, owner: str, session_id: str) -> list[str]:
        return [
            record_key(owner, session_id),
            _stream_key(owner, session_id),
            _seen_key(owner, session_id),
        ]

    async def store_callback(
        self, owner: str, request_id: str, session_id: str, fields: EventFields
    ) -> Stored:
        """Check the binding, then de-duplicate, append and move the status, all at once."""
        keys = [
            *self._event_keys(owner, session_id),
            _binding_key(owner, request_id),
            _early_key(owner, request_id),
        ]
        args = [*self._event_args(fields), session_id]
        return self._stored(await self._store_callback(keys=keys, args=args))

    async def store_event(self, owner: str, session_id: str, fields: EventFields) -> Stored:
        """De-duplicate, append and move the status of an event already known to be the owner's."""
        keys = self._event_keys(owner, session_id)
        return self._stored(await self._store_event(keys=keys, args=self._event_args(fields)))

    @staticmethod
    def _stored(reply: Any) -> Stored:
        values = [str(item) for item in cast(list[Any], reply)]
        return Stored(Outcome(values[0]), values[1] if len(values) > 1 else None)

    async def read(self, owner: str, session_id: str, after: str, count: int) -> list[StreamEntry]:
        """Events after the cursor `after`, oldest first."""
        found = await self._redis.xrange(
            _stream_key(owner, session_id), f"({after}", "+", count=count
        )
        return [_entry(raw_id, fields) for raw_id, fields in cast(list[Any], found)]

    async def wait(
        self, owner: str, session_id: str, after: str, count: int, block_ms: int
    ) -> list[StreamEntry]:
        """Events after `after`, waiting at most `block_ms` for the first one."""
        key = _stream_key(owner, session_id)
        found = await self._redis.xread({key: after}, count=count, block=block_ms)
        entries: list[StreamEntry] = []
        for _, items in cast(list[Any], found or []):
            entries.extend(_entry(raw_id, fields) for raw_id, fields in items)
        return entries

    async def end_event_id(self, owner: str, session_id: str) -> str | None:
        """The stream id of the session's `live.end_session`, once it is stored."""
        stored = await self._redis.get(record_key(owner, session_id))
        value = json.loads(stored).get("ended_event") if stored else None
        return str(value) if value is not None else None

    async def forget(self, owner: str, session_id: str, request_id: str) -> None:
        """Drop a deleted session's events; its binding stays, so its callbacks stay refused."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(
                _stream_key(owner, session_id),
                _seen_key(owner, session_id),
                _relay_cursor_key(owner, session_id),
            )
            pipe.hdel(_binding_key(owner, request_id), "subject")
            pipe.delete(_session_owner_key(session_id))
            await pipe.execute()

    # --- webhooks -------------------------------------------------------------------------

    async def webhook_seen(self, message_id: str) -> bool:
        return bool(await self._redis.exists(_webhook_message_key(message_id)))

    async def remember_webhook(self, message_id: str) -> None:
        await self._redis.set(_webhook_message_key(message_id), "1", ex=self._dedupe_ttl_s)

    async def defer_webhook(self, message_id: str) -> int:
        """Count one more time a webhook was sent back to be retried later."""
        key = _webhook_deferral_key(message_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, WEBHOOK_DEFERRAL_TTL_S)
            count, _ = await pipe.execute()
        return int(count)

    # --- relay cursor ---------------------------------------------------------------------

    async def relay_cursor(self, owner: str, session_id: str) -> str:
        value = await self._redis.get(_relay_cursor_key(owner, session_id))
        return str(value) if value is not None else "0-0"

    async def advance_relay_cursor(self, owner: str, session_id: str, event_id: str) -> None:
        await self._redis.set(_relay_cursor_key(owner, session_id), event_id, ex=self._stream_ttl_s)

    # --- job queues -----------------------------------------------------------------------

    async def mark(self, queue: str, member: str) -> None:
        """Put work on a queue (or say there is more of it), due now unless it is backing off."""
        await self._mark(
            keys=[_queue_key(queue, "due"), _queue_key(queue, "generation")],
            args=[member, _now_ms(), self._queue_ttl_s],
        )

    async def due(self, queue: str, limit: int) -> list[tuple[str, str]]:
        """Members whose time has come, each with its generation."""
        members = cast(
            list[str],
            await self._redis.zrangebyscore(
                _queue_key(queue, "due"), "-inf", _now_ms(), start=0, num=limit
            ),
        )
        if not members:
            return []
        generations = await self._redis.hmget(_queue_key(queue, "generation"), members)
        return [
            (m, str(g) if g is not None else "") for m, g in zip(members, generations, strict=True)
        ]

    async def finish(self, queue: str, member: str, generation: str) -> bool:
        """Take work off its queue, unless more arrived since `generation` was read."""
        keys = [_queue_key(queue, part) for part in ("due", "generation", "tries")]
        return bool(await self._finish(keys=keys, args=[member, generation]))

    async def retry_later(self, queue: str, member: str, base_s: float, max_s: float) -> int:
        """Push work back with capped exponential backoff; returns how many tries failed."""
        keys = [_queue_key(queue, "due"), _queue_key(queue, "tries")]
        args: list[str | int | float] = [
            member,
            _now_ms(),
            int(base_s * 1000),
            int(max_s * 1000),
            random.random(),  # noqa: S311 (jitter, not a secret)
            self._queue_ttl_s,
        ]
        return int(await self._retry_later(keys=keys, args=args))

    async def lock(self, queue: str, member: str, token: str, lease_s: float) -> bool:
        key = _queue_key(queue, f"lock:{member}")
        return bool(await self._redis.set(key, token, nx=True, px=int(lease_s * 1000)))

    async def renew(self, queue: str, member: str, token: str, lease_s: float) -> bool:
        key = _queue_key(queue, f"lock:{member}")
        return bool(await self._renew(keys=[key], args=[token, int(lease_s * 1000)]))

    async def release(self, queue: str, member: str, token: str) -> None:
        await self._release(keys=[_queue_key(queue, f"lock:{member}")], args=[token])
