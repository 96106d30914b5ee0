"""The only code that names Redis keys: session records in and out, with their TTLs.

Every key of one owner shares the hash tag `{owner}`, so the multi-key transactions below run
on Redis Cluster too. Nothing is stored without a TTL, and the per-owner index is capped.
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

FINAL_STATUSES = frozenset({"done", "error"})

# Moves a record's status only while the record exists, so an expired record is never revived
# as a partial hash without a TTL.
_SET_STATUS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1])
if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1
"""


@dataclass(frozen=True)
class SessionRecord:
    """What the broker remembers of one Gladia live session."""

    id: str
    owner: str
    url: str
    created_at: str
    expires_at: str
    status: str
    messages_config: dict[str, bool]
    request_id: str

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def to_hash(self) -> dict[str, str]:
        return {
            "id": self.id,
            "owner": self.owner,
            "url": self.url,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "status": self.status,
            "messages_config": json.dumps(self.messages_config, separators=(",", ":")),
            "request_id": self.request_id,
        }

    @classmethod
    def from_hash(cls, fields: Mapping[str, str]) -> SessionRecord | None:
        try:
            return cls(
                id=fields["id"],
                owner=fields["owner"],
                url=fields["url"],
                created_at=fields["created_at"],
                expires_at=fields["expires_at"],
                status=fields["status"],
                messages_config=json.loads(fields["messages_config"]),
                request_id=fields["request_id"],
            )
        except (KeyError, ValueError):
            return None


@dataclass(frozen=True)
class SessionPage:
    records: list[SessionRecord]
    next_cursor: str | None


def _session_key(owner: str, session_id: str) -> str:
    return f"broker:{{{owner}}}:session:{session_id}"


def _result_key(owner: str, session_id: str) -> str:
    return f"broker:{{{owner}}}:result:{session_id}"


def _index_key(owner: str) -> str:
    return f"broker:{{{owner}}}:sessions"


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
        self._set_status = client.register_script(_SET_STATUS)

    async def save(self, record: SessionRecord) -> None:
        session_key, index_key = _session_key(record.owner, record.id), _index_key(record.owner)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(session_key, mapping=cast(Any, record.to_hash()))
            pipe.expire(session_key, self._session_ttl_s)
            pipe.zadd(index_key, {record.id: time.time()})
            # The newest entries stay; older ones drop out of the listing, never unbounded.
            pipe.zremrangebyrank(index_key, 0, -self._index_max - 1)
            pipe.expire(index_key, max(self._session_ttl_s, self._result_ttl_s))
            await pipe.execute()

    async def load(self, owner: str, session_id: str) -> SessionRecord | None:
        """The owner's record, or None when it is missing or belongs to someone else."""
        fields = cast(dict[str, str], await self._redis.hgetall(_session_key(owner, session_id)))
        return SessionRecord.from_hash(fields) if fields else None

    async def set_status(self, record: SessionRecord, status: str) -> None:
        ttl_s = self._result_ttl_s if status in FINAL_STATUSES else 0
        await self._set_status(keys=[_session_key(record.owner, record.id)], args=[status, ttl_s])

    async def load_result(self, record: SessionRecord) -> dict[str, Any] | None:
        cached = await self._redis.get(_result_key(record.owner, record.id))
        return json.loads(cached) if cached else None

    async def save_final_result(self, record: SessionRecord, result: Mapping[str, Any]) -> None:
        """Cache a done or error result, and keep the record as long as the result."""
        session_key = _session_key(record.owner, record.id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(
                _result_key(record.owner, record.id),
                json.dumps(result, separators=(",", ":")),
                ex=self._result_ttl_s,
            )
            pipe.hset(session_key, "status", str(result.get("status", "done")))
            pipe.expire(session_key, self._result_ttl_s)
            await pipe.execute()

    async def delete(self, record: SessionRecord) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(_session_key(record.owner, record.id), _result_key(record.owner, record.id))
            pipe.zrem(_index_key(record.owner), record.id)
            await pipe.execute()

    async def list_page(self, owner: str, limit: int, cursor: str | None) -> SessionPage:
        """The owner's records, newest first, `limit` at a time after `cursor`."""
        index_key = _index_key(owner)
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
        async with self._redis.pipeline(transaction=False) as pipe:
            for member, _ in window:
                pipe.hgetall(_session_key(owner, member))
            found = await pipe.execute()
        records = [SessionRecord.from_hash(fields) if fields else None for fields in found]
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
        index_key = _index_key(owner)
        members = cast(list[str], await self._redis.zrevrange(index_key, offset, offset + limit))
        window = members[:limit]
        async with self._redis.pipeline(transaction=False) as pipe:
            for member in window:
                pipe.hgetall(_session_key(owner, member))
            found = await pipe.execute()
        records = [SessionRecord.from_hash(fields) if fields else None for fields in found]
        expired = [member for member, record in zip(window, records, strict=True) if not record]
        if expired:
            await self._redis.zrem(index_key, *expired)
        next_offset = str(offset + limit) if len(members) > limit else None
        return SessionPage(records=[r for r in records if r is not None], next_cursor=next_offset)

    async def ping(self) -> bool:
        return bool(await self._redis.ping())
