"""Fill Redis with session records in the store's real format, fast.

The sessions the load generator looks up are saved through `SessionStore.save`, for owners the
harness holds tokens for. The filler around them (up to a million) is written by a Lua script,
server-side, from templates the store itself produces (`session_keys`, `SessionRecord.stored`),
so the layout cannot drift from what the broker writes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

from broker.identity.credentials import Subject
from broker.settings import Settings
from broker.store.keys import (
    ACCOUNT_LEASES_KEY,
    session_keys,
    session_owner_key,
    subject_leases_key,
)
from broker.store.records import SessionStore
from broker.store.session_record import SessionRecord

# Placeholders the Lua filler replaces per session; none is a Lua pattern character.
OWNER, SESSION, TOKEN, REQUEST = "@OWNER@", "@ID@", "@TOKEN@", "@REQ@"
SESSIONS_PER_OWNER = 4
BATCH = 20_000

_FILL = """
local record_template, index_template = ARGV[1], ARGV[2]
local record_ttl, index_ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local first, last, per_owner = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local now = tonumber(ARGV[8])
local value_template = ARGV[9]
local function uuid_of(text)
  local h = redis.sha1hex(text)
  return h:sub(1, 8) .. '-' .. h:sub(9, 12) .. '-' .. h:sub(13, 16) .. '-' .. h:sub(17, 20)
    .. '-' .. h:sub(21, 32)
end
for n = first, last do
  local values = {
    ['@OWNER@'] = redis.sha1hex('owner:' .. math.floor(n / per_owner)):sub(1, 32),
    ['@ID@'] = uuid_of('session:' .. n),
    ['@TOKEN@'] = uuid_of('token:' .. n),
    ['@REQ@'] = redis.sha1hex('request:' .. n):sub(1, 32),
  }
  local function fill(text) return (text:gsub('@%u+@', values)) end
  local record_key, index_key = fill(record_template), fill(index_template)
  redis.call('SET', record_key, fill(value_template), 'EX', record_ttl)
  redis.call('ZADD', index_key, now + n / 1e6, values['@ID@'])
  redis.call('EXPIRE', index_key, index_ttl)
end
return last - first + 1
"""


@dataclass(frozen=True)
class LookupTarget:
    """A stored session and the subject that owns it."""

    subject: str
    session_id: str


def sample_record(owner: str, session_id: str, token: str, request_id: str) -> SessionRecord:
    """A record as the broker stores it after a create with the harness's create body."""
    return SessionRecord(
        id=session_id,
        owner=owner,
        url=f"wss://api.gladia.io/v2/live?token={token}",
        created_at="2026-11-25T10:00:00.000Z",
        expires_at="2026-11-25T13:00:00.000Z",
        status="created",
        messages_config={"receive_partial_transcripts": True, "receive_acknowledgments": True},
        request_id=request_id,
    )


async def save_targets(redis_url: str, settings: Settings, count: int) -> list[LookupTarget]:
    """`count` sessions saved by the real store, one owner each (a user's first session)."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    store = SessionStore(client, settings)
    targets = []
    try:
        for index in range(count):
            subject = f"bench-lookup-{index}"
            session_id = str(uuid.uuid4())
            record = sample_record(
                Subject(subject).key, session_id, str(uuid.uuid4()), uuid.uuid4().hex
            )
            await store.save(record)
            targets.append(LookupTarget(subject, session_id))
    finally:
        await client.aclose()
    return targets


def fill(client: redis.Redis, settings: Settings, first: int, count: int) -> None:
    """Sessions `first` … `first + count - 1` of the filler, `SESSIONS_PER_OWNER` per owner."""
    keys = session_keys(OWNER, SESSION)
    value = sample_record(OWNER, SESSION, TOKEN, REQUEST).stored()
    index_ttl_s = max(settings.session_ttl_s, settings.result_ttl_s)
    script = client.register_script(_FILL)
    now = time.time()
    for start in range(first, first + count, BATCH):
        last = min(start + BATCH, first + count) - 1
        args: Sequence[str | int | float] = [
            keys.record,
            keys.index,
            settings.session_ttl_s,
            index_ttl_s,
            start,
            last,
            SESSIONS_PER_OWNER,
            now,
            value,
        ]
        script(keys=[], args=list(args))


def copy_all(source: redis.Redis, target: redis.Redis) -> None:
    """Every key of `source` into `target`, byte for byte, with its TTL (DUMP and RESTORE).

    Both clients without decode_responses: a DUMP is bytes.
    """
    with target.pipeline(transaction=False) as pipe:
        for key in source.scan_iter(count=1000):
            dumped = source.dump(key)
            if dumped is not None:  # gone since the scan
                pipe.restore(key, max(int(source.pttl(key)), 0), dumped, replace=True)
        pipe.execute()


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def session_bytes(client: redis.Redis, owner: str, session_id: str) -> dict[str, float]:
    """MEMORY USAGE of every key the live session holds alone (its record, cached result,
    owner for webhooks), and its share of each set it is a member of (the
    owner's index, the owner's leases, the account's leases), by part. Its events (a stream
    of transcripts, as long as the session speaks) are data, not what a session costs; the
    user's create window and an Idempotency-Key claim belong to a create, for a minute or a
    day, and are not counted either."""
    keys = session_keys(owner, session_id)
    parts = {
        "record": float(client.memory_usage(keys.record, samples=0) or 0),
        "result": float(client.memory_usage(keys.result, samples=0) or 0),
        "owner for webhooks": float(
            client.memory_usage(session_owner_key(session_id), samples=0) or 0
        ),
    }
    for name, key in (
        ("index share", keys.index),
        ("own leases share", subject_leases_key(owner)),
        ("account leases share", ACCOUNT_LEASES_KEY),
    ):
        members = int(client.zcard(key) or 0)
        parts[name] = (client.memory_usage(key, samples=0) or 0) / members if members else 0.0
    return parts
