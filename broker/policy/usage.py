"""Usage: the audio seconds each subject's finished sessions were billed, per UTC day.

A session is counted once, when its result is final (`ResultFetcher.finish_if_final`), on the
day Gladia says it completed: Gladia's `billing_time` (audio seconds times channels) when the
result has it, else the audio duration times the channels. Keys (`broker.store.keys`, in the
subject's hash slot, so the admission script reads the day's seconds for
`BROKER_BUDGET_SECONDS_PER_DAY` without another round trip):

- `broker:{<subject>}:usage:<day>`: hash of `seconds`, `sessions` and `ref:<client_ref>`
  (seconds of the sessions created with tokens carrying that `client_ref`).
- `broker:{<subject>}:usage-counted:<day>`: the session ids counted that day; the one script
  that adds to the hash adds to this set first, so counting a session again changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import redis.asyncio as redis

from broker.observability.metrics import Metrics
from broker.settings import GLADIA_MAX_SESSION_S
from broker.store.keys import subject_usage_key, usage_counted_key
from broker.store.scripts import LuaFunction, LuaScript

USAGE_TTL_S = 35 * 24 * 3600
# A day's usage can be read this many days at a time (GET /v1/usage).
MAX_DAYS = 31
# The most one session can be billed: Gladia's longest session on its most channels. A larger
# figure is not believed (it would spend a budget at once).
MAX_SESSION_SECONDS = GLADIA_MAX_SESSION_S * 8
REF_PREFIX = "ref:"

# keys: the day's usage, the day's counted sessions. argv: session id, seconds, client_ref ('':
# none), TTL s. Returns 1 when counted, 0 when the session was counted already.
_COUNT_USAGE = LuaFunction(
    "count_usage",
    """
local function count_usage(keys, argv)
  if redis.call('SADD', keys[2], argv[1]) == 0 then return 0 end
  redis.call('EXPIRE', keys[2], argv[4])
  redis.call('HINCRBYFLOAT', keys[1], 'seconds', argv[2])
  redis.call('HINCRBY', keys[1], 'sessions', 1)
  if argv[3] ~= '' then
    redis.call('HINCRBYFLOAT', keys[1], 'ref:' .. argv[3], argv[2])
  end
  redis.call('EXPIRE', keys[1], argv[4])
  return 1
end
""",
    keys=2,
    args=4,
)


def utc_day(moment: datetime | None = None) -> str:
    """The UTC day of `moment` (now by default), as `YYYY-MM-DD`."""
    return (moment or datetime.now(UTC)).astimezone(UTC).date().isoformat()


def _amount(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _part(result: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    part = result.get(name)
    return part if isinstance(part, Mapping) else {}


def billed_seconds(result: Mapping[str, Any]) -> float:
    """What Gladia bills for a final result (`GET /v2/live/{id}`): audio seconds times channels."""
    metadata = _part(_part(result, "result"), "metadata")
    billing = _amount(metadata.get("billing_time"))
    if billing is None:
        file = _part(result, "file")
        duration = _amount(metadata.get("audio_duration"))
        if duration is None:
            duration = _amount(file.get("audio_duration"))
        channels = _amount(metadata.get("number_of_distinct_channels"))
        if channels is None:
            channels = _amount(file.get("number_of_channels"))
        if channels is None:
            channels = _amount(_part(result, "request_params").get("channels"))
        billing = (duration or 0.0) * (channels if channels is not None else 1.0)
    return min(billing, MAX_SESSION_SECONDS)


def finished_day(result: Mapping[str, Any], now: datetime | None = None) -> str:
    """The UTC day the session completed (Gladia's `completed_at`), so every count of it
    names the same day; today when that is missing or not believable (more than a day off)."""
    now = now or datetime.now(UTC)
    completed = result.get("completed_at")
    if isinstance(completed, str):
        try:
            moment = datetime.fromisoformat(completed)
        except ValueError:
            return utc_day(now)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if abs(moment - now) <= timedelta(days=1):
            return utc_day(moment)
    return utc_day(now)


@dataclass(frozen=True)
class UsageDay:
    """One subject's usage on one UTC day."""

    day: str
    seconds: float = 0.0
    sessions: int = 0
    by_client_ref: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "seconds": self.seconds,
            "sessions": self.sessions,
            "by_client_ref": dict(self.by_client_ref),
        }


def _read_day(day: str, stored: Mapping[str, str]) -> UsageDay:
    def seconds(text: str) -> float:
        try:
            return round(float(text), 3)
        except ValueError:
            return 0.0

    refs = {
        name.removeprefix(REF_PREFIX): seconds(value)
        for name, value in sorted(stored.items())
        if name.startswith(REF_PREFIX)
    }
    sessions = stored.get("sessions", "0")
    return UsageDay(
        day=day,
        seconds=seconds(stored.get("seconds", "0")),
        sessions=int(sessions) if sessions.isdigit() else 0,
        by_client_ref=refs,
    )


def days_between(first: date, last: date) -> list[date]:
    """Every day from `first` to `last`, both included."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


class Usage:
    """Counts finished sessions into their owner's day, and reads the days back."""

    def __init__(self, client: redis.Redis, metrics: Metrics | None = None) -> None:
        self._redis = client
        self._metrics = metrics
        self._count = LuaScript(client, _COUNT_USAGE)

    async def count(
        self,
        owner: str,
        session_id: str,
        result: Mapping[str, Any],
        client_ref: str | None = None,
    ) -> bool:
        """Add a final result's billed seconds to its owner's day; False if counted before."""
        seconds = billed_seconds(result)
        day = finished_day(result)
        counted = await self._count(
            keys=[subject_usage_key(owner, day), usage_counted_key(owner, day)],
            args=[session_id, f"{seconds:.3f}", client_ref or "", USAGE_TTL_S],
        )
        if counted and self._metrics is not None:
            self._metrics.usage_audio_seconds.inc(seconds)
        return bool(counted)

    async def days(self, owner: str, first: date, last: date) -> list[UsageDay]:
        """The owner's usage on each day from `first` to `last` (at most MAX_DAYS of them)."""
        wanted = [day.isoformat() for day in days_between(first, last)][:MAX_DAYS]
        # One slot (the owner's), so one round trip on a Cluster too.
        async with self._redis.pipeline(transaction=False) as pipe:
            for day in wanted:
                pipe.hgetall(subject_usage_key(owner, day))
            stored = cast(list[dict[str, str]], await pipe.execute())
        return [_read_day(day, found) for day, found in zip(wanted, stored, strict=True)]
