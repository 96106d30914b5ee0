"""Callbacks, events, webhooks and background jobs, as Redis keeps them.

Per-session keys share their owner's hash tag with the session record (`broker.store.keys`), so
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

from broker.bounded_json import MAX_JSON_DEPTH, nested_deeper_than
from broker.settings import Settings
from broker.store.keys import (
    callback_binding_key,
    early_callbacks_key,
    event_stream_key,
    events_seen_key,
    job_dead_letters_key,
    job_due_key,
    job_generation_key,
    job_lock_key,
    job_tries_key,
    relay_cursor_key,
    relay_failure_key,
    session_owner_key,
    session_record_key,
    subject_leases_key,
    webhook_deferral_key,
    webhook_message_key,
)
from broker.store.scripts import NOW_MS, LuaFunction, LuaScript, Step
from broker.store.session_record import RECORD_TEXT, SessionRecord

# keys: record, stream, seen. argv: digest, status, is-end, event, source, received_at, payload,
# then this instance's settings: seen cap, dedupe TTL, events max, stream TTL.
_STORE_EVENT = LuaFunction(
    "store_event",
    """
local function store_event(keys, argv)
  local ranks = {created=0, recording=1, ended=2, done=3, error=3}
  local stored = redis.call('GET', keys[1])
  if not stored then return {'unknown'} end
  if redis.call('SISMEMBER', keys[3], argv[1]) == 1 then return {'duplicate'} end
  if redis.call('SCARD', keys[3]) >= tonumber(argv[8]) then return {'full'} end
  redis.call('SADD', keys[3], argv[1])
  redis.call('EXPIRE', keys[3], argv[9])
  local id = redis.call('XADD', keys[2], 'MAXLEN', '~', argv[10], '*',
    'event', argv[4], 'source', argv[5], 'received_at', argv[6], 'payload', argv[7])
  redis.call('EXPIRE', keys[2], argv[11])
  -- Move what changed in the record, keeping its TTL.
  local updated = stored
  if argv[2] ~= '' and (ranks[argv[2]] or 0) > (ranks[record_field(stored, 'status')] or 0) then
    updated = record_with(updated, 'status', argv[2])
  end
  if argv[3] == '1' then updated = record_with(updated, 'ended_event', id) end
  if updated ~= stored then redis.call('SET', keys[1], updated, 'KEEPTTL') end
  return {'stored', id}
end
""",
    keys=3,
    args=11,
    calls=(RECORD_TEXT,),
)

# A callback names its session in its body (keys[1] is that session's record); the record must
# be the one its capability's create made. keys 4, 5: the subject's leases and the create's
# early buffer. argv 12 to 15: the body's session id, the capability's request id, the early
# buffer's cap and TTL. While the create still holds its pending lease (it waits for Gladia's
# answer), its deliveries are buffered, briefly and capped, as "session id, event, payload"
# lines, and checked against the session id when the create writes its record
# (`TAKE_EARLY_CALLBACKS`, in the same script as the lease's confirmation). Without a record or
# a pending lease, the session is unknown: deleted, expired, or never the capability's.
_STORE_CALLBACK = LuaFunction(
    "store_callback",
    """
local function store_callback(keys, argv)
  local stored = redis.call('GET', keys[1])
  if stored then
    if record_field(stored, 'request_id') ~= argv[13] then return {'mismatch'} end
    return store_event(keys, argv)
  end
  local pending_until = redis.call('ZSCORE', keys[4], argv[13])
  if not pending_until or tonumber(pending_until) <= now_ms() then return {'unknown'} end
  if redis.call('LLEN', keys[5]) >= tonumber(argv[14]) then return {'full'} end
  redis.call('RPUSH', keys[5], argv[12] .. '\\n' .. argv[4] .. '\\n' .. argv[7])
  redis.call('EXPIRE', keys[5], argv[15])
  return {'early'}
end
""",
    keys=5,
    args=15,
    calls=(NOW_MS, RECORD_TEXT, _STORE_EVENT),
)

# keys: the callback binding. argv: session id, subject ('' unless the relay needs it), ttl.
# Written only with BROKER_LEGACY_RECORDS, for versions before 2026-12-07 running beside this one:
# they check callbacks against it (and read the relay's subject from it).
LEGACY_BINDING = LuaFunction(
    "legacy_binding",
    """
local function legacy_binding(keys, argv)
  redis.call('HSET', keys[1], 'session_id', argv[1])
  if argv[2] ~= '' then redis.call('HSET', keys[1], 'subject', argv[2]) end
  redis.call('EXPIRE', keys[1], argv[3])
  return 1
end
""",
    keys=1,
    args=3,
)

# keys: the create's early buffer. Returns (and drops) the deliveries buffered there; run in the
# script that writes the record, so none comes between.
TAKE_EARLY_CALLBACKS = LuaFunction(
    "take_early_callbacks",
    """
local function take_early_callbacks(keys, argv)
  local early = redis.call('LRANGE', keys[1], 0, -1)
  redis.call('DEL', keys[1])
  return early
end
""",
    keys=1,
    args=0,
)

# keys: due, generation. argv: member, now ms, ttl. A member already waiting keeps its time,
# so work in backoff stays in backoff; the generation says "there is more since you looked".
_MARK_JOB = LuaFunction(
    "mark_job",
    """
local function mark_job(keys, argv)
  redis.call('HINCRBY', keys[2], argv[1], 1)
  redis.call('ZADD', keys[1], 'NX', argv[2], argv[1])
  redis.call('EXPIRE', keys[1], argv[3])
  redis.call('EXPIRE', keys[2], argv[3])
  return 1
end
""",
    keys=2,
    args=3,
)

# keys: due, generation, tries. argv: member, the generation seen before the work started.
_FINISH_JOB = LuaFunction(
    "finish_job",
    """
local function finish_job(keys, argv)
  if (redis.call('HGET', keys[2], argv[1]) or '') ~= argv[2] then return 0 end
  redis.call('ZREM', keys[1], argv[1])
  redis.call('HDEL', keys[2], argv[1])
  redis.call('HDEL', keys[3], argv[1])
  return 1
end
""",
    keys=3,
    args=2,
)

# keys: due, tries. argv: member, now ms, base ms, max ms, jitter in [0, 1), ttl.
# Capped exponential backoff with equal jitter; XX: finished work is not revived.
_RETRY_JOB_LATER = LuaFunction(
    "retry_job_later",
    """
local function retry_job_later(keys, argv)
  local tries = redis.call('HINCRBY', keys[2], argv[1], 1)
  redis.call('EXPIRE', keys[2], argv[6])
  local delay = math.min(tonumber(argv[3]) * 2 ^ math.min(tries - 1, 40), tonumber(argv[4]))
  delay = delay * (0.5 + 0.5 * tonumber(argv[5]))
  redis.call('ZADD', keys[1], 'XX', string.format('%.0f', tonumber(argv[2]) + delay), argv[1])
  return tries
end
""",
    keys=2,
    args=6,
)

# keys: a job's lock. argv: the holder's token, lease ms.
_RENEW_LOCK = LuaFunction(
    "renew_lock",
    """
local function renew_lock(keys, argv)
  if redis.call('GET', keys[1]) ~= argv[1] then return 0 end
  return redis.call('PEXPIRE', keys[1], argv[2])
end
""",
    keys=1,
    args=2,
)

# keys: a job's lock. argv: the holder's token.
_RELEASE_LOCK = LuaFunction(
    "release_lock",
    """
local function release_lock(keys, argv)
  if redis.call('GET', keys[1]) ~= argv[1] then return 0 end
  return redis.call('DEL', keys[1])
end
""",
    keys=1,
    args=1,
)

# keys: a session's relay failure. argv: event id, error class, ttl s. Returns {attempts, first
# failure ms, now ms} of that event; a failure of another event than the one recorded (the
# cursor moved on) starts the count again.
_RECORD_RELAY_FAILURE = LuaFunction(
    "record_relay_failure",
    """
local function record_relay_failure(keys, argv)
  local now = now_ms()
  if redis.call('HGET', keys[1], 'event') ~= argv[1] then
    redis.call('DEL', keys[1])
    redis.call('HSET', keys[1], 'event', argv[1], 'first_ms', string.format('%.0f', now))
  end
  local attempts = redis.call('HINCRBY', keys[1], 'attempts', 1)
  redis.call('HSET', keys[1], 'error', argv[2])
  redis.call('EXPIRE', keys[1], argv[3])
  return {attempts, tonumber(redis.call('HGET', keys[1], 'first_ms')), now}
end
""",
    keys=1,
    args=3,
    calls=(NOW_MS,),
)

# Parked work waits in `due` at this score plus the time it was parked: past any due time, so
# no runner takes it, and `mark` (ZADD NX) leaves it there, until it is replayed.
PARKED_BASE_MS = 10**15
# Parked members and letters older than the retention forgotten per new letter, at most.
_RETENTION_SWEEP = 100

# keys: due, tries, dead letters. argv: member, retention ms, queue ttl s, then the letter:
# session, event id, event type, attempts, error, first failure ms. Returns the letter's id.
# Letters and parked members past the retention go first: the events they name are gone too.
_DEAD_LETTER = LuaFunction(
    "dead_letter",
    f"""
local function dead_letter(keys, argv)
  local now = now_ms()
  local oldest_kept = now - tonumber(argv[2])
  local stale = redis.call('ZRANGEBYSCORE', keys[1], '{PARKED_BASE_MS}',
    string.format('%.0f', {PARKED_BASE_MS} + oldest_kept), 'LIMIT', 0, {_RETENTION_SWEEP})
  for _, member in ipairs(stale) do
    redis.call('ZREM', keys[1], member)
    redis.call('HDEL', keys[2], member)
  end
  redis.call('XTRIM', keys[3], 'MINID', string.format('%.0f', oldest_kept))
  local id = redis.call('XADD', keys[3], '*', 'member', argv[1], 'session', argv[4],
    'event', argv[5], 'type', argv[6], 'attempts', argv[7], 'error', argv[8],
    'first_failed_ms', argv[9])
  redis.call('ZADD', keys[1], string.format('%.0f', {PARKED_BASE_MS} + now), argv[1])
  redis.call('HDEL', keys[2], argv[1])
  redis.call('EXPIRE', keys[1], argv[3])
  redis.call('PEXPIRE', keys[3], argv[2])
  return id
end
""",
    keys=3,
    args=9,
    calls=(NOW_MS,),
)

# keys: due, dead letters. argv: letter id, now ms, queue ttl s. Returns the letter's member,
# due now again, or '' when there is no such letter (replayed already, or past retention).
_REPLAY_DEAD_LETTER = LuaFunction(
    "replay_dead_letter",
    """
local function replay_dead_letter(keys, argv)
  local found = redis.call('XRANGE', keys[2], argv[1], argv[1])
  if #found == 0 then return '' end
  redis.call('XDEL', keys[2], argv[1])
  local fields = found[1][2]
  for i = 1, #fields, 2 do
    if fields[i] == 'member' then
      redis.call('ZADD', keys[1], argv[2], fields[i + 1])
      redis.call('EXPIRE', keys[1], argv[3])
      return fields[i + 1]
    end
  end
  return ''
end
""",
    keys=2,
    args=3,
)

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
    """A callback kept before its create's record: the session id its body named, unchecked."""

    session_id: str
    event: str
    payload_json: str


@dataclass(frozen=True)
class RelayFailure:
    """How often, and since when, the delivery of one event has failed."""

    attempts: int
    first_failed_ms: int
    now_ms: int

    @property
    def age_ms(self) -> int:
        return self.now_ms - self.first_failed_ms


@dataclass(frozen=True)
class DeadLetter:
    """Work given up on: its queue member, the event it stopped at, and why; no payload."""

    member: str
    session_id: str
    event_id: str
    event_type: str
    attempts: int
    error: str
    first_failed_ms: int
    # The letter's stream id (its time in ms, then a sequence), once stored.
    id: str = ""

    @property
    def dead_lettered_ms(self) -> int:
        return int(self.id.partition("-")[0] or 0)


def _dead_letter(raw_id: str, fields: dict[str, str]) -> DeadLetter:
    return DeadLetter(
        member=fields.get("member", ""),
        session_id=fields.get("session", ""),
        event_id=fields.get("event", ""),
        event_type=fields.get("type", ""),
        attempts=int(fields.get("attempts") or 0),
        error=fields.get("error", ""),
        first_failed_ms=int(fields.get("first_failed_ms") or 0),
        id=raw_id,
    )


def early_deliveries(bound: object) -> list[EarlyDelivery]:
    """What `take_early_callbacks` returned: the deliveries buffered before the record."""
    found = []
    for line in cast(list[Any], bound):
        claimed_id, event, payload_json = str(line).split("\n", 2)
        found.append(EarlyDelivery(claimed_id, event, payload_json))
    return found


def _stored_payload(payload_json: str) -> Any:
    """A stored payload as JSON, or its stored text when it could not be rendered as JSON."""
    try:
        payload = json.loads(payload_json)
    except RecursionError:
        return payload_json
    except ValueError:
        return None
    # Kept before intake bounded nesting: rendering it would recurse past Python's limit.
    return payload_json if nested_deeper_than(MAX_JSON_DEPTH, payload, payload_json) else payload


def _entry(raw_id: str, fields: dict[str, str]) -> StreamEntry:
    payload = _stored_payload(fields.get("payload", "null"))
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
    """Callbacks, event streams, de-duplication markers, and the background job queues."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self._redis = client
        self._callback_ttl_s = settings.callback_ttl_s
        self._early_ttl_s = int(settings.gladia_total_timeout_s) + EARLY_MARGIN_S
        self._dedupe_ttl_s = settings.dedupe_ttl_s
        self._events_max = settings.events_max
        # Events are kept as long as the session's result, and never less than a session.
        self._stream_ttl_s = max(settings.result_ttl_s, settings.session_ttl_s)
        self._queue_ttl_s = max(settings.result_ttl_s, settings.callback_ttl_s)
        # What the event scripts take after each event's own arguments.
        self._event_limits = [
            self._events_max * SEEN_PER_EVENT_CAP,
            self._dedupe_ttl_s,
            self._events_max,
            self._stream_ttl_s,
        ]
        self._early_limits = [EARLY_MAX, self._early_ttl_s]
        self._store_event = LuaScript(client, _STORE_EVENT)
        self._store_callback = LuaScript(client, _STORE_CALLBACK)
        self._mark = LuaScript(client, _MARK_JOB)
        self._finish = LuaScript(client, _FINISH_JOB)
        self._retry_later = LuaScript(client, _RETRY_JOB_LATER)
        self._renew = LuaScript(client, _RENEW_LOCK)
        self._release = LuaScript(client, _RELEASE_LOCK)
        self._record_relay_failure = LuaScript(client, _RECORD_RELAY_FAILURE)
        self._dead_letter = LuaScript(client, _DEAD_LETTER)
        self._replay_dead_letter = LuaScript(client, _REPLAY_DEAD_LETTER)

    # --- callbacks ------------------------------------------------------------------------

    def take_early_step(self, owner: str, request_id: str) -> Step:
        """The early deliveries of a create, taken in the script that writes its record; its
        result is read by `early_deliveries`."""
        return Step(TAKE_EARLY_CALLBACKS, [early_callbacks_key(owner, request_id)], [])

    def legacy_binding_step(
        self, owner: str, request_id: str, session_id: str, subject: str | None
    ) -> Step:
        """The callback binding versions before 2026-12-07 read (`LEGACY_BINDING`)."""
        return Step(
            LEGACY_BINDING,
            [callback_binding_key(owner, request_id)],
            [session_id, subject or "", self._callback_ttl_s],
        )

    async def note_session_owner(self, session_id: str, owner: str) -> None:
        """Who owns a session, for account webhooks, which name only the session."""
        await self._redis.set(session_owner_key(session_id), owner, ex=self._callback_ttl_s)

    async def legacy_subject(self, owner: str, request_id: str) -> str | None:
        """The user of a session recorded before records kept it: its callback binding did."""
        subject = await self._redis.hget(callback_binding_key(owner, request_id), "subject")
        return str(subject) if subject is not None else None

    async def session_owner(self, session_id: str) -> str | None:
        owner = await self._redis.get(session_owner_key(session_id))
        return str(owner) if owner is not None else None

    # --- events ---------------------------------------------------------------------------

    def _event_args(self, fields: EventFields) -> list[str | int]:
        return [
            fields.digest,
            fields.status or "",
            "1" if fields.is_end else "0",
            fields.event,
            fields.source,
            fields.received_at,
            fields.payload_json,
            *self._event_limits,
        ]

    def _event_keys(self, owner: str, session_id: str) -> list[str]:
        return [
            session_record_key(owner, session_id),
            event_stream_key(owner, session_id),
            events_seen_key(owner, session_id),
        ]

    async def store_callback(
        self, owner: str, request_id: str, session_id: str, fields: EventFields
    ) -> Stored:
        """Check that the session is the capability's, then de-duplicate, append and move the
        status, all at once."""
        keys = [
            *self._event_keys(owner, session_id),
            subject_leases_key(owner),
            early_callbacks_key(owner, request_id),
        ]
        args = [*self._event_args(fields), session_id, request_id, *self._early_limits]
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
            event_stream_key(owner, session_id), f"({after}", "+", count=count
        )
        return [_entry(raw_id, fields) for raw_id, fields in cast(list[Any], found)]

    async def wait(
        self, owner: str, session_id: str, after: str, count: int, block_ms: int
    ) -> list[StreamEntry]:
        """Events after `after`, waiting at most `block_ms` for the first one."""
        key = event_stream_key(owner, session_id)
        found = await self._redis.xread({key: after}, count=count, block=block_ms)
        entries: list[StreamEntry] = []
        for _, items in cast(list[Any], found or []):
            entries.extend(_entry(raw_id, fields) for raw_id, fields in items)
        return entries

    async def end_event_id(self, owner: str, session_id: str) -> str | None:
        """The stream id of the session's `live.end_session`, once it is stored."""
        stored = cast(str | None, await self._redis.get(session_record_key(owner, session_id)))
        record = SessionRecord.from_stored(owner, session_id, stored) if stored else None
        return record.ended_event if record is not None else None

    async def forget(self, owner: str, session_id: str, request_id: str) -> None:
        """Drop a deleted session's events (its callbacks are refused: it has no record)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(
                event_stream_key(owner, session_id),
                events_seen_key(owner, session_id),
                relay_cursor_key(owner, session_id),
                relay_failure_key(owner, session_id),
            )
            pipe.delete(callback_binding_key(owner, request_id), session_owner_key(session_id))
            await pipe.execute()

    # --- webhooks -------------------------------------------------------------------------

    async def webhook_seen(self, message_id: str) -> bool:
        return bool(await self._redis.exists(webhook_message_key(message_id)))

    async def remember_webhook(self, message_id: str) -> None:
        await self._redis.set(webhook_message_key(message_id), "1", ex=self._dedupe_ttl_s)

    async def defer_webhook(self, message_id: str) -> int:
        """Count one more time a webhook was sent back to be retried later."""
        key = webhook_deferral_key(message_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, WEBHOOK_DEFERRAL_TTL_S)
            count, _ = await pipe.execute()
        return int(count)

    # --- relay cursor ---------------------------------------------------------------------

    async def relay_cursor(self, owner: str, session_id: str) -> str:
        value = await self._redis.get(relay_cursor_key(owner, session_id))
        return str(value) if value is not None else "0-0"

    async def advance_relay_cursor(self, owner: str, session_id: str, event_id: str) -> None:
        await self._redis.set(relay_cursor_key(owner, session_id), event_id, ex=self._stream_ttl_s)

    async def record_relay_failure(
        self, owner: str, session_id: str, event_id: str, error: str
    ) -> RelayFailure:
        """Count one more failed delivery of `event_id`, the session's next event to relay."""
        attempts, first_failed_ms, now_ms = await self._record_relay_failure(
            keys=[relay_failure_key(owner, session_id)],
            args=[event_id, error, self._stream_ttl_s],
        )
        return RelayFailure(int(attempts), int(first_failed_ms), int(now_ms))

    async def forget_relay_failure(self, owner: str, session_id: str) -> None:
        await self._redis.delete(relay_failure_key(owner, session_id))

    # --- job queues -----------------------------------------------------------------------

    async def mark(self, queue: str, member: str) -> None:
        """Put work on a queue (or say there is more of it), due now unless it is backing off."""
        await self._mark(
            keys=[job_due_key(queue), job_generation_key(queue)],
            args=[member, _now_ms(), self._queue_ttl_s],
        )

    async def due(self, queue: str, limit: int) -> list[tuple[str, str]]:
        """Members whose time has come, each with its generation."""
        members = cast(
            list[str],
            await self._redis.zrangebyscore(
                job_due_key(queue), "-inf", _now_ms(), start=0, num=limit
            ),
        )
        if not members:
            return []
        generations = await self._redis.hmget(job_generation_key(queue), members)
        return [
            (m, str(g) if g is not None else "") for m, g in zip(members, generations, strict=True)
        ]

    async def finish(self, queue: str, member: str, generation: str) -> bool:
        """Take work off its queue, unless more arrived since `generation` was read."""
        keys = [job_due_key(queue), job_generation_key(queue), job_tries_key(queue)]
        return bool(await self._finish(keys=keys, args=[member, generation]))

    async def retry_later(self, queue: str, member: str, base_s: float, max_s: float) -> int:
        """Push work back with capped exponential backoff; returns how many tries failed."""
        keys = [job_due_key(queue), job_tries_key(queue)]
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
        key = job_lock_key(queue, member)
        return bool(await self._redis.set(key, token, nx=True, px=int(lease_s * 1000)))

    async def renew(self, queue: str, member: str, token: str, lease_s: float) -> bool:
        key = job_lock_key(queue, member)
        return bool(await self._renew(keys=[key], args=[token, int(lease_s * 1000)]))

    async def release(self, queue: str, member: str, token: str) -> None:
        await self._release(keys=[job_lock_key(queue, member)], args=[token])

    # --- dead letters ---------------------------------------------------------------------

    async def dead_letter(self, queue: str, letter: DeadLetter) -> str:
        """Give up on a member's work: a letter an operator can list, the member parked.

        Kept as long as the events it names (the stream's TTL), so that a replay finds them.
        """
        keys = [job_due_key(queue), job_tries_key(queue), job_dead_letters_key(queue)]
        args: list[str | int | float] = [
            letter.member,
            self._stream_ttl_s * 1000,
            self._queue_ttl_s,
            letter.session_id,
            letter.event_id,
            letter.event_type,
            letter.attempts,
            letter.error,
            letter.first_failed_ms,
        ]
        return str(await self._dead_letter(keys=keys, args=args))

    async def dead_letters(self, queue: str, count: int) -> list[DeadLetter]:
        """The queue's dead letters, oldest first, at most `count`."""
        found = await self._redis.xrange(job_dead_letters_key(queue), count=count)
        return [_dead_letter(raw_id, fields) for raw_id, fields in cast(list[Any], found)]

    async def count_dead_letters(self, queue: str) -> int:
        return int(await self._redis.xlen(job_dead_letters_key(queue)))

    async def count_waiting(self, queue: str) -> tuple[int, int]:
        """The queue's members waiting (due now or backing off; parked ones aside), and those
        backing off among them, in one round trip."""
        due = job_due_key(queue)
        # Scores are due times in ms; a failure's backoff puts one in the future, a dead letter
        # parks its member at PARKED_BASE_MS and beyond.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcount(due, "-inf", f"({PARKED_BASE_MS}")
            pipe.zcount(due, f"({_now_ms()}", f"({PARKED_BASE_MS}")
            waiting, retrying = await pipe.execute()
        return int(waiting), int(retrying)

    async def replay_dead_letter(self, queue: str, letter_id: str) -> str | None:
        """Put a dead letter's member back on its queue, due now; its member, or None."""
        member = await self._replay_dead_letter(
            keys=[job_due_key(queue), job_dead_letters_key(queue)],
            args=[letter_id, _now_ms(), self._queue_ttl_s],
        )
        return str(member) or None
