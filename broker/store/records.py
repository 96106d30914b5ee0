"""Session records in and out, with their TTLs: the record, its cached result, the owner's index.

Their keys (`broker.store.keys`) share the owner's hash tag, so the multi-key scripts below run
on Redis Cluster too. Nothing is stored without a TTL, and the per-owner index is capped.

A record is one string (`GET`/`SET`, its form in `broker.store.session_record`), not a hash: a
hash holding a session URL (longer than Redis's 64-byte listpack limit) is stored as a full
hashtable, 908 bytes a session, and one `GET` is the cheapest lookup (docs/performance.md).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as redis

from broker.errors import BadRequest
from broker.settings import Settings
from broker.store.keys import (
    session_keys,
    session_record_key,
    session_result_key,
    sessions_index_key,
)
from broker.store.scripts import ComposedScript, LuaFunction, LuaScript, Step
from broker.store.session_record import FINAL_STATUSES, RECORD_TEXT, SessionRecord

# The record and its index entry, applied together. keys: record, index. argv: record JSON,
# TTL, id, index score, index cap, index TTL.
SAVE_RECORD = LuaFunction(
    "save_record",
    """
local function save_record(keys, argv)
  redis.call('SET', keys[1], argv[1], 'EX', argv[2])
  redis.call('ZADD', keys[2], argv[4], argv[3])
  redis.call('ZREMRANGEBYRANK', keys[2], 0, -tonumber(argv[5]) - 1)
  redis.call('EXPIRE', keys[2], argv[6])
  return 1
end
""",
    keys=2,
    args=6,
)

# keys: the record. The record's text, or false: a read to compose with another on its slot.
_LOAD_RECORD = LuaFunction(
    "load_record",
    """
local function load_record(keys, argv)
  return redis.call('GET', keys[1])
end
""",
    keys=1,
    args=0,
)

# Moves a record's status only while the record exists, so an expired record is never revived
# without a TTL; a final status gives it the result's TTL. keys: record. argv: status, TTL (0
# keeps the record's).
_SET_STATUS = LuaFunction(
    "set_status",
    """
local function set_status(keys, argv)
  local stored = redis.call('GET', keys[1])
  if not stored then return 0 end
  local updated = record_with(stored, 'status', argv[1])
  if tonumber(argv[2]) > 0 then
    redis.call('SET', keys[1], updated, 'EX', argv[2])
  else
    redis.call('SET', keys[1], updated, 'KEEPTTL')
  end
  return 1
end
""",
    keys=1,
    args=2,
    calls=(RECORD_TEXT,),
)

# The result, and the record's status moved in place (what events added to it stays), with
# the result's TTL for both. keys: record, result. argv: status, TTL, result JSON.
_SAVE_FINAL = LuaFunction(
    "save_final",
    """
local function save_final(keys, argv)
  redis.call('SET', keys[2], argv[3], 'EX', argv[2])
  return set_status(keys, argv)
end
""",
    keys=2,
    args=3,
    calls=(_SET_STATUS,),
)

_COMPACT = (",", ":")


@dataclass(frozen=True)
class SessionPage:
    records: list[SessionRecord]
    next_cursor: str | None


def _parse_cursor(cursor: str | None) -> tuple[float, str | None]:
    if cursor is None:
        return math.inf, None
    score_text, _, after_id = cursor.partition(":")
    try:
        score = float(score_text)
    except ValueError:
        raise BadRequest("cursor is not a cursor this API returned") from None
    if not after_id or not math.isfinite(score):
        raise BadRequest("cursor is not a cursor this API returned")
    return score, after_id


class SessionStore:
    """Session records, results and each owner's index, all keyed by `(owner, id)`."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self._redis = client
        self._session_ttl_s = settings.session_ttl_s
        self._result_ttl_s = settings.result_ttl_s
        self._index_max = settings.sessions_index_max
        self._legacy = settings.legacy_records
        self._save = LuaScript(client, SAVE_RECORD)
        self._set_status = LuaScript(client, _SET_STATUS)
        self._save_final = LuaScript(client, _SAVE_FINAL)
        # The record read with another read of the owner's slot, by the other's function.
        self._loads_with: dict[LuaFunction, ComposedScript] = {}

    async def save(self, record: SessionRecord) -> None:
        step = self.save_step(record)
        await self._save(keys=step.keys, args=step.args)

    def save_step(self, record: SessionRecord) -> Step:
        """The save, to run in a script with other steps on the owner's slot."""
        keys = session_keys(record.owner, record.id)
        # The newest entries stay in the index; older ones drop out of the listing.
        return Step(
            SAVE_RECORD,
            [keys.record, keys.index],
            [
                record.to_json() if self._legacy else record.stored(),
                self._session_ttl_s,
                record.id,
                time.time(),
                self._index_max,
                max(self._session_ttl_s, self._result_ttl_s),
            ],
        )

    async def load(self, owner: str, session_id: str) -> SessionRecord | None:
        """The owner's record, or None when it is missing or belongs to someone else."""
        stored = cast(str | None, await self._redis.get(session_record_key(owner, session_id)))
        return SessionRecord.from_stored(owner, session_id, stored) if stored else None

    async def load_with(
        self, owner: str, session_id: str, other: Step
    ) -> tuple[SessionRecord | None, Any]:
        """`load`, and what `other` (a read of keys on the owner's slot) answers, in one round
        trip: the reconnect lookup checks its credential's revocations this way."""
        script = self._loads_with.get(other.function)
        if script is None:
            script = ComposedScript(self._redis, [_LOAD_RECORD, other.function])
            self._loads_with[other.function] = script
        load = Step(_LOAD_RECORD, [session_record_key(owner, session_id)], [])
        stored, answer = await script(load, other)
        record = SessionRecord.from_stored(owner, session_id, stored) if stored else None
        return record, answer

    async def set_status(self, record: SessionRecord, status: str) -> None:
        ttl_s = self._result_ttl_s if status in FINAL_STATUSES else 0
        record_key = session_record_key(record.owner, record.id)
        await self._set_status(keys=[record_key], args=[status, ttl_s])

    async def load_result(self, record: SessionRecord) -> dict[str, Any] | None:
        cached = await self._redis.get(session_result_key(record.owner, record.id))
        return json.loads(cached) if cached else None

    async def save_final_result(self, record: SessionRecord, result: Mapping[str, Any]) -> None:
        """Cache a done or error result, and keep the record as long as the result."""
        keys = session_keys(record.owner, record.id)
        await self._save_final(
            keys=[keys.record, keys.result],
            args=[
                str(result.get("status", "done")),
                self._result_ttl_s,
                json.dumps(result, separators=_COMPACT),
            ],
        )

    async def delete(self, record: SessionRecord) -> None:
        keys = session_keys(record.owner, record.id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.record, keys.result)
            pipe.zrem(keys.index, record.id)
            await pipe.execute()

    async def list_page(self, owner: str, limit: int, cursor: str | None) -> SessionPage:
        """The owner's records, newest first, `limit` at a time after `cursor`."""
        index_key = sessions_index_key(owner)
        upper, after_id = _parse_cursor(cursor)
        # Ties on the score come in descending id order; skip those up to the cursor's id.
        entries = cast(
            list[tuple[str, float]],
            await self._redis.zrevrangebyscore(
                index_key, upper, "-inf", start=0, num=limit + 32, withscores=True
            ),
        )
        if after_id is not None:
            entries = [(m, score) for m, score in entries if score < upper or m < after_id]
        window = entries[:limit]
        found = (
            cast(
                list[str | None],
                await self._redis.mget([session_record_key(owner, m) for m, _ in window]),
            )
            if window
            else []
        )
        records = [
            SessionRecord.from_stored(owner, member, stored) if stored else None
            for (member, _), stored in zip(window, found, strict=True)
        ]
        expired = [
            member for (member, _), record in zip(window, records, strict=True) if not record
        ]
        if expired:
            await self._redis.zrem(index_key, *expired)
        next_cursor = None
        if len(entries) > limit and window:
            last_id, last_score = window[-1]
            next_cursor = f"{last_score!r}:{last_id}"
        return SessionPage(records=[r for r in records if r is not None], next_cursor=next_cursor)

    async def list_slice(self, owner: str, offset: int, limit: int) -> SessionPage:
        """The owner's records, newest first, `limit` of them from position `offset`.

        For Gladia's offset pagination; `next_cursor` is the next offset when more follow.
        """
        index_key = sessions_index_key(owner)
        members = cast(list[str], await self._redis.zrevrange(index_key, offset, offset + limit))
        window = members[:limit]
        found = (
            cast(
                list[str | None],
                await self._redis.mget([session_record_key(owner, m) for m in window]),
            )
            if window
            else []
        )
        records = [
            SessionRecord.from_stored(owner, member, stored) if stored else None
            for member, stored in zip(window, found, strict=True)
        ]
        expired = [member for member, record in zip(window, records, strict=True) if not record]
        if expired:
            await self._redis.zrem(index_key, *expired)
        next_offset = str(offset + limit) if len(members) > limit else None
        return SessionPage(records=[r for r in records if r is not None], next_cursor=next_offset)

    async def ping(self) -> bool:
        return bool(await self._redis.ping())
