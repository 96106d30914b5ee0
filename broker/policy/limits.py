"""Leases, rate windows and attempt counters: every Redis script behind the broker's limits.

All of them live in Redis so that every instance agrees, and all of them read the clock from
Redis `TIME`, so instances with drifting clocks still agree. Keys (named in `broker.store.keys`,
each with a TTL):

- `broker:{<subject>}:leases`: the subject's live sessions; a sorted set of lease id to expiry (ms).
- `broker:{<subject>}:creates`: the subject's admitted creates in the sliding window; request id
  to admission time (ms). Shares the subject's hash tag, so one script checks both atomically.
- `broker:{<subject>}:reads`: the subject's read budget spent in the sliding window, one member
  per unit (a read costs one; a facade list one per session it asks Gladia about).
- `broker:{<subject>}:token-uses:<token id>`: the creates a token bound to `max_sessions` was
  admitted for; a set of request ids, never more than its `max_sessions`. Checked in the same
  script as the two above; a create that Gladia refused, or that never reached it, gives its
  use back (`release_lease(..., token_id=...)`), one whose outcome is unknown keeps it.
- `broker:{<subject>}:usage:<day>`: read by that script too, for `BROKER_BUDGET_SECONDS_PER_DAY`
  (written by `broker.policy.usage`).
- `broker:{account}:leases`: every live session of the Gladia account, same shape.
- `broker:{addr:<hash>}:misses`: failed authentications and not-found answers per client address.
  Most requests from an address that has not missed here need no look-up (`RecentMisses`).

Every script is safe to run twice for one request (members are request or session ids, so a retry
refreshes instead of counting again: a timed-out command may still have been applied, §4.3).
A create first holds *pending* leases named by its request id, with a short TTL so that a crash
mid-create frees them soon; once Gladia answers, `confirm_lease` renames them to the session id
with the full TTL; `release_lease(subject_key, session_id)` ends them.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, NoReturn, cast

import redis.asyncio as redis
from redis.exceptions import RedisError

from broker.errors import Forbidden, TooManyRequests
from broker.policy.usage import utc_day
from broker.settings import Settings
from broker.store.keys import (
    ACCOUNT_LEASES_KEY,
    address_bucket,
    bucket_misses_key,
    subject_creates_key,
    subject_leases_key,
    subject_reads_key,
    subject_usage_key,
    token_uses_key,
)
from broker.store.scripts import NOW_MS, ComposedScript, LuaFunction, LuaScript, Step

logger = logging.getLogger("broker.limits")

# A create holds its pending leases this long beyond Gladia's own deadline.
PENDING_MARGIN_S = 30

# keys: subject leases, subject creates, the token's uses, today's usage. argv: member, max live,
# lease ms, max creates, window ms, key TTL ms, max sessions (0: unbound), uses TTL ms, budget
# seconds (0: none). Returns {granted, reason, wait ms}: the token's uses, then the day's budget,
# then the window, then the live cap. A token's uses are the set of request ids it was admitted
# for (at most its max sessions), so a retried script finds its own and counts nothing twice.
_ADMIT_SUBJECT = LuaFunction(
    "admit_subject",
    """
local function admit_subject(keys, argv)
  local now = now_ms()
  local member = argv[1]
  local window_ms = tonumber(argv[5])
  local max_sessions = tonumber(argv[7])
  local budget = tonumber(argv[9])
  redis.call('ZREMRANGEBYSCORE', keys[1], '-inf', now)
  redis.call('ZREMRANGEBYSCORE', keys[2], '-inf', now - window_ms)
  if redis.call('ZSCORE', keys[1], member) then
    redis.call('ZADD', keys[1], now + tonumber(argv[3]), member)
    return {1, '', 0}
  end
  if max_sessions > 0 and redis.call('SISMEMBER', keys[3], member) == 0
     and redis.call('SCARD', keys[3]) >= max_sessions then
    return {0, 'binding_sessions', 0}
  end
  if budget > 0 and tonumber(redis.call('HGET', keys[4], 'seconds') or '0') >= budget then
    return {0, 'budget_seconds_per_day', 86400000 - now % 86400000}
  end
  if redis.call('ZCARD', keys[2]) >= tonumber(argv[4]) then
    local oldest = redis.call('ZRANGE', keys[2], 0, 0, 'WITHSCORES')
    return {0, 'creates_per_minute', tonumber(oldest[2]) + window_ms - now}
  end
  if redis.call('ZCARD', keys[1]) >= tonumber(argv[2]) then
    local first = redis.call('ZRANGE', keys[1], 0, 0, 'WITHSCORES')
    return {0, 'live_per_subject', tonumber(first[2]) - now}
  end
  redis.call('ZADD', keys[1], now + tonumber(argv[3]), member)
  redis.call('PEXPIRE', keys[1], argv[6])
  redis.call('ZADD', keys[2], now, member)
  redis.call('PEXPIRE', keys[2], window_ms)
  if max_sessions > 0 then
    redis.call('SADD', keys[3], member)
    redis.call('PEXPIRE', keys[3], argv[8])
  end
  return {1, '', 0}
end
""",
    keys=4,
    args=9,
    calls=(NOW_MS,),
)

# keys: account leases. argv: member, max live, lease ms, key TTL ms.
_ADMIT_ACCOUNT = LuaFunction(
    "admit_account",
    """
local function admit_account(keys, argv)
  local now = now_ms()
  local member = argv[1]
  redis.call('ZREMRANGEBYSCORE', keys[1], '-inf', now)
  if not redis.call('ZSCORE', keys[1], member)
     and redis.call('ZCARD', keys[1]) >= tonumber(argv[2]) then
    local first = redis.call('ZRANGE', keys[1], 0, 0, 'WITHSCORES')
    return {0, 'account_live', tonumber(first[2]) - now}
  end
  redis.call('ZADD', keys[1], now + tonumber(argv[3]), member)
  redis.call('PEXPIRE', keys[1], argv[4])
  return {1, '', 0}
end
""",
    keys=1,
    args=4,
    calls=(NOW_MS,),
)

# keys: admit_subject's four, then the account's leases. argv: admit_subject's nine, then
# admit_account's four. For one Redis node (Cluster slots keep the two scripts apart): the
# subject's limits first, the account's only once the subject's passed, and what the subject's
# took given back when the account refuses, in one round trip. Returns the refusing script's
# answer ({granted, reason, wait ms}), or the account's grant.
_ADMIT_BOTH = LuaFunction(
    "admit_both",
    """
local function admit_both(keys, argv)
  local subject = admit_subject({keys[1], keys[2], keys[3], keys[4]},
    {argv[1], argv[2], argv[3], argv[4], argv[5], argv[6], argv[7], argv[8], argv[9]})
  if subject[1] == 0 then
    return subject
  end
  local account = admit_account({keys[5]}, {argv[10], argv[11], argv[12], argv[13]})
  if account[1] == 0 then
    redis.call('ZREM', keys[1], argv[1])
    redis.call('ZREM', keys[2], argv[1])
    redis.call('SREM', keys[3], argv[1])
  end
  return account
end
""",
    keys=5,
    args=13,
    calls=(_ADMIT_SUBJECT, _ADMIT_ACCOUNT),
)

# keys: a lease set. argv: pending member, session member, lease ms, key TTL ms.
CONFIRM_LEASE = LuaFunction(
    "confirm_lease",
    """
local function confirm_lease(keys, argv)
  local now = now_ms()
  redis.call('ZREM', keys[1], argv[1])
  redis.call('ZADD', keys[1], now + tonumber(argv[3]), argv[2])
  redis.call('PEXPIRE', keys[1], argv[4])
  return 1
end
""",
    keys=1,
    args=4,
    calls=(NOW_MS,),
)

# keys, argv: confirm_lease's. The account's confirmation as a step of a create's script on one
# node: its failure (a key of the wrong type) is answered as text instead of ending the script,
# so the session stays recorded, as when the confirmation runs apart (on a Cluster).
CONFIRM_LEASE_ANSWERED = LuaFunction(
    "confirm_lease_answered",
    """
local function confirm_lease_answered(keys, argv)
  local ok, err = pcall(confirm_lease, keys, argv)
  if ok then return 1 end
  if type(err) == 'table' then return tostring(err['err']) end
  return tostring(err)
end
""",
    keys=1,
    args=4,
    calls=(CONFIRM_LEASE,),
)

# keys: an address's misses. argv: max, window ms. Read-only: {allowed, wait ms}.
_CHECK_ADDRESS = LuaFunction(
    "check_address",
    """
local function check_address(keys, argv)
  local now = now_ms()
  local since = now - tonumber(argv[2])
  local recent = redis.call('ZRANGEBYSCORE', keys[1], since, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if redis.call('ZCOUNT', keys[1], since, '+inf') >= tonumber(argv[1]) then
    return {0, tonumber(recent[2]) + tonumber(argv[2]) - now}
  end
  return {1, 0}
end
""",
    keys=1,
    args=2,
    calls=(NOW_MS,),
)

# keys: an address's misses. argv: member, max, window ms. Keeps only the newest `max` entries.
_RECORD_MISS = LuaFunction(
    "record_miss",
    """
local function record_miss(keys, argv)
  local now = now_ms()
  redis.call('ZREMRANGEBYSCORE', keys[1], '-inf', now - tonumber(argv[3]))
  redis.call('ZADD', keys[1], now, argv[1])
  redis.call('ZREMRANGEBYRANK', keys[1], 0, -tonumber(argv[2]) - 1)
  redis.call('PEXPIRE', keys[1], argv[3])
  return 1
end
""",
    keys=1,
    args=3,
    calls=(NOW_MS,),
)

# keys: subject reads. argv: member prefix, units, budget, window ms. Returns {granted, wait ms}.
# One member per unit, `<prefix>:<n>`, so the window is counted like the creates' (ZCARD) and
# the wait is until the unit whose expiry makes room for all of `units` leaves the window.
_SPEND_READS = LuaFunction(
    "spend_reads",
    """
local function spend_reads(keys, argv)
  local now = now_ms()
  local units = tonumber(argv[2])
  local budget = tonumber(argv[3])
  local window_ms = tonumber(argv[4])
  redis.call('ZREMRANGEBYSCORE', keys[1], '-inf', now - window_ms)
  local spent = redis.call('ZCARD', keys[1])
  local excess = spent + units - budget
  if excess > 0 then
    local freeing = redis.call('ZRANGE', keys[1], excess - 1, excess - 1, 'WITHSCORES')
    return {0, tonumber(freeing[2]) + window_ms - now}
  end
  local entries = {}
  for n = 1, units do
    entries[2 * n - 1] = now
    entries[2 * n] = argv[1] .. ':' .. n
  end
  redis.call('ZADD', keys[1], unpack(entries))
  redis.call('PEXPIRE', keys[1], window_ms)
  return {1, 0}
end
""",
    keys=1,
    args=4,
    calls=(NOW_MS,),
)


class RecentMisses:
    """What this instance knows of client addresses, so that most need no look-up in Redis.

    An address that has missed here within the window is looked up on every request. Any other
    address may have one request at a time let through without a look-up (the unchecked slot);
    its other requests meanwhile are looked up. So across instances an address gets at most one
    unchecked miss per instance and window: that miss is counted in Redis as always, and from
    then on this instance looks the address up. At `capacity` addresses every request is
    looked up.
    """

    def __init__(
        self,
        window_s: float,
        capacity: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window_s = window_s
        self._capacity = capacity
        self._clock = clock
        self._last_miss: dict[str, float] = {}
        self._unchecked: set[str] = set()

    def note(self, bucket: str) -> None:
        self._last_miss.pop(bucket, None)  # re-inserted last: the dict stays oldest first
        self._last_miss[bucket] = self._clock()
        self._forget_expired()
        if len(self._last_miss) > self._capacity:
            # Still full after this: everything is looked up until the oldest expires anyway.
            del self._last_miss[next(iter(self._last_miss))]

    def take_unchecked(self, bucket: str) -> bool:
        """Whether this request may skip the look-up; if so, `release` it once answered."""
        self._forget_expired()
        if (
            bucket in self._last_miss
            or bucket in self._unchecked
            or len(self._last_miss) >= self._capacity
            or len(self._unchecked) >= self._capacity
        ):
            return False
        self._unchecked.add(bucket)
        return True

    def release(self, bucket: str) -> None:
        self._unchecked.discard(bucket)

    def _forget_expired(self) -> None:
        horizon = self._clock() - self._window_s
        while self._last_miss:
            oldest = next(iter(self._last_miss))
            if self._last_miss[oldest] > horizon:
                break
            del self._last_miss[oldest]


def _wait_s(wait_ms: object, ceiling_s: int | None = None) -> int:
    seconds = max(1, math.ceil(max(0, int(cast(Any, wait_ms))) / 1000))
    return min(seconds, ceiling_s) if ceiling_s is not None else seconds


class Limits:
    """The limits a create, and every client request, must pass; shared through Redis."""

    def __init__(
        self,
        client: redis.Redis,
        settings: Settings,
        *,
        window_s: float = 60.0,
        pending_margin_s: float = PENDING_MARGIN_S,
    ) -> None:
        self._redis = client
        self._max_live = settings.max_live_per_subject
        self._max_creates = settings.creates_per_minute
        self._account_max_live = settings.account_max_live
        self._max_misses = settings.failed_attempts_per_minute
        self._window_ms = int(window_s * 1000)
        self._lease_ms = settings.lease_ttl_s * 1000
        self._pending_ms = int((settings.gladia_total_timeout_s + pending_margin_s) * 1000)
        # A lease set lives as long as the longest lease it can hold.
        self._lease_key_ttl_ms = max(self._lease_ms, self._pending_ms)
        self._retry_after_s = settings.retry_after_s
        self._uses_ttl_ms = settings.token_max_ttl_s * 1000
        self._budget_s = settings.budget_seconds_per_day
        self.refusals: Counter[str] = Counter()
        self._recent_misses = RecentMisses(window_s)
        self._admit_subject = LuaScript(client, _ADMIT_SUBJECT)
        # On one node (single Redis, Sentinel) both admissions run as one script.
        self._one_node = not settings.redis_cluster
        self._admit_both = LuaScript(client, _ADMIT_BOTH)
        self._admit_account = LuaScript(client, _ADMIT_ACCOUNT)
        self._guarded_scripts: dict[tuple[LuaFunction, LuaFunction], ComposedScript] = {}
        self._confirm = LuaScript(client, CONFIRM_LEASE)
        self._check_address = LuaScript(client, _CHECK_ADDRESS)
        self._record_miss = LuaScript(client, _RECORD_MISS)
        self._max_reads = settings.reads_per_minute
        self._spend_reads = LuaScript(client, _SPEND_READS)

    async def admit(
        self,
        subject_key: str,
        request_id: str,
        *,
        token_id: str | None = None,
        max_sessions: int | None = None,
        guard: Step | None = None,
    ) -> str | None:
        """Take a pending lease for the subject and the account, or raise TooManyRequests.

        `guard`, a guard step on the subject's slot (`broker.store.scripts.compose`), runs
        first in the subject's script: its refusal is returned, and nothing is admitted; None
        once admitted.

        With `max_sessions`, the create also takes one of the token's uses (Forbidden once they
        are all taken). Subject first: a subject over its own limits never touches the account
        set, so one user hammering cannot crowd others out of it. One script on one Redis node,
        two on a Cluster (the account's leases have a slot of their own). Redis errors
        propagate (the caller answers 503: creates fail closed).
        """
        if max_sessions is not None and not token_id:
            raise ValueError("a token bound to max_sessions needs its id to be counted")
        uses_key = token_uses_key(subject_key, token_id or "")
        subject_keys = [
            subject_leases_key(subject_key),
            subject_creates_key(subject_key),
            uses_key,
            subject_usage_key(subject_key, utc_day()),
        ]
        subject_args: list[str | int | float] = [
            request_id,
            self._max_live,
            self._pending_ms,
            self._max_creates,
            self._window_ms,
            self._lease_key_ttl_ms,
            max_sessions or 0,
            self._uses_ttl_ms,
            self._budget_s,
        ]
        account_args: list[str | int | float] = [
            request_id,
            self._account_max_live,
            self._pending_ms,
            self._lease_key_ttl_ms,
        ]
        if self._one_node:
            admitted = await self._guarded(
                self._admit_both,
                guard,
                Step(_ADMIT_BOTH, [*subject_keys, ACCOUNT_LEASES_KEY], subject_args + account_args),
            )
            if isinstance(admitted, str):
                return admitted
            granted, reason, wait_ms = admitted
            if not granted:
                if reason == "account_live":
                    self._refuse_account(wait_ms)
                self._refuse_subject(reason, wait_ms, max_sessions)
            return None
        subject_step = Step(_ADMIT_SUBJECT, subject_keys, subject_args)
        return await self._admit_on_cluster(subject_step, account_args, max_sessions, guard)

    async def _admit_on_cluster(
        self,
        subject_step: Step,
        account_args: list[str | int | float],
        max_sessions: int | None,
        guard: Step | None,
    ) -> str | None:
        """`admit` as two scripts, the subject's (with the guard) first, then the account's."""
        admitted = await self._guarded(self._admit_subject, guard, subject_step)
        if isinstance(admitted, str):
            return admitted
        granted, reason, wait_ms = admitted
        if not granted:
            self._refuse_subject(reason, wait_ms, max_sessions)
        granted, reason, wait_ms = await self._admit_account(
            keys=[ACCOUNT_LEASES_KEY], args=account_args
        )
        if not granted:
            # Give back what the subject script took: this create never happened.
            leases, creates, uses = subject_step.keys[:3]
            request_id = subject_step.args[0]
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrem(leases, request_id)
                pipe.zrem(creates, request_id)
                if max_sessions is not None:
                    pipe.srem(uses, request_id)
                await pipe.execute()
            self._refuse_account(wait_ms)
        return None

    async def _guarded(self, alone: LuaScript, guard: Step | None, step: Step) -> Any:
        """`step`'s answer (`alone` runs it without a guard), or, as text, the refusal of
        `guard` run before it in the same script."""
        if guard is None:
            return await alone(keys=step.keys, args=step.args)
        functions = (guard.function, step.function)
        script = self._guarded_scripts.get(functions)
        if script is None:
            script = ComposedScript(self._redis, functions, guarded=True)
            self._guarded_scripts[functions] = script
        answer = await script(guard, step)
        return str(answer[0]) if answer[0] != "" else answer[1]

    def _refuse_account(self, wait_ms: object) -> NoReturn:
        self._refuse("account_live", "Transcription capacity is fully used; try again shortly",
                     _wait_s(wait_ms, self._retry_after_s))  # fmt: skip

    def _refuse_subject(self, reason: str, wait_ms: object, max_sessions: int | None) -> NoReturn:
        if reason == "binding_sessions":
            self.refusals[reason] += 1
            logger.info("limit refused: %s", reason, extra={"fields": {"limit": reason}})
            raise Forbidden(
                f"This token may create {max_sessions} session(s) and has created them all; "
                "ask the app for a new token",
                reason=reason,
            )
        if reason == "budget_seconds_per_day":
            self._refuse(reason, "Today's audio budget is used up; try again after UTC midnight",
                         _wait_s(wait_ms))  # fmt: skip
        if reason == "creates_per_minute":
            self._refuse(reason, "Too many sessions created; wait before creating another",
                         _wait_s(wait_ms))  # fmt: skip
        self._refuse(reason, "Too many live sessions; end one before starting another",
                     _wait_s(wait_ms, self._retry_after_s))  # fmt: skip

    def confirm_subject_step(
        self, subject_key: str, request_id: str, session_id: str, lease_s: float | None = None
    ) -> Step:
        """A create's pending lease of the subject made the session's own, for the whole
        session (or `lease_s`, when shorter): a step of the create's script on the owner's
        slot (`CreateWrites`)."""
        return Step(
            CONFIRM_LEASE,
            [subject_leases_key(subject_key)],
            self._confirm_args(request_id, session_id, lease_s),
        )

    @property
    def one_node(self) -> bool:
        """Whether Redis is one node (a server, Sentinel's master), where slots do not apply."""
        return self._one_node

    def confirm_account_step(
        self, request_id: str, session_id: str, lease_s: float | None = None
    ) -> Step:
        """`confirm_account` as a step of the create's script, on one node only (the account's
        leases have a slot of their own): it answers 1, or the error as text."""
        return Step(
            CONFIRM_LEASE_ANSWERED,
            [ACCOUNT_LEASES_KEY],
            self._confirm_args(request_id, session_id, lease_s),
        )

    async def confirm_account(
        self, request_id: str, session_id: str, lease_s: float | None = None
    ) -> None:
        """The account's pending lease made the session's own, beside the create's script."""
        await self._confirm(
            keys=[ACCOUNT_LEASES_KEY], args=self._confirm_args(request_id, session_id, lease_s)
        )

    def _confirm_args(
        self, request_id: str, session_id: str, lease_s: float | None
    ) -> list[str | int]:
        lease_ms = self._lease_ms if lease_s is None else min(self._lease_ms, int(lease_s * 1000))
        return [request_id, session_id, max(1, lease_ms), self._lease_key_ttl_ms]

    async def release_lease(
        self, subject_key: str, lease_id: str, *, token_id: str | None = None
    ) -> None:
        """End a lease (a session id, or a failed create's request id); releasing twice is fine.

        With `token_id`, the create named `lease_id` also gives the token's use back.
        """
        # Two hash slots, plain commands: one round trip on a single node, split on a cluster.
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrem(subject_leases_key(subject_key), lease_id)
            if token_id:
                pipe.srem(token_uses_key(subject_key, token_id), lease_id)
            pipe.zrem(ACCOUNT_LEASES_KEY, lease_id)
            await pipe.execute()

    async def live_leases(self, subject_key: str | None = None) -> int:
        """Leases not yet expired, for one subject or for the whole account."""
        key = ACCOUNT_LEASES_KEY if subject_key is None else subject_leases_key(subject_key)
        time_s, time_us = await self._redis.time()
        return int(await self._redis.zcount(key, f"({time_s * 1000 + time_us // 1000}", "+inf"))

    async def check_address(self, address: str) -> bool:
        """Refuse an address with too many recent misses; fails open when Redis is down.

        True when the request was let through without a look-up (`RecentMisses`): the caller
        then calls `end_unchecked(address)` once the request is answered and its miss noted.
        """
        bucket = address_bucket(address)
        if self._recent_misses.take_unchecked(bucket):
            return True
        try:
            allowed, wait_ms = await self._check_address(
                keys=[bucket_misses_key(bucket)], args=[self._max_misses, self._window_ms]
            )
        except RedisError as exc:
            # Cheap reads degrade open (§4.4); creates still fail closed on their own leases.
            logger.warning("attempt counter unavailable: %s", type(exc).__name__)
            return False
        if not allowed:
            self._refuse("failed_attempts", "Too many failed attempts from this address",
                         _wait_s(wait_ms))  # fmt: skip
        return False

    def end_unchecked(self, address: str) -> None:
        """The unchecked request from `address` is answered: another may skip the look-up."""
        self._recent_misses.release(address_bucket(address))

    async def record_miss(self, address: str, attempt_id: str) -> None:
        """Count a failed authentication or a not-found answer against the client's address."""
        bucket = address_bucket(address)
        self._recent_misses.note(bucket)
        try:
            await self._record_miss(
                keys=[bucket_misses_key(bucket)],
                args=[attempt_id, self._max_misses, self._window_ms],
            )
        except RedisError as exc:
            logger.warning("attempt counter unavailable: %s", type(exc).__name__)

    async def spend_reads(self, subject_key: str, units: int = 1) -> None:
        """Take `units` of the subject's read budget, or raise TooManyRequests.

        Fails open when Redis is down, like the address counter: every read then needs Redis
        anyway and answers 503 on its own. A cost above the whole budget is charged the budget,
        so that a large page is slow to repeat rather than impossible.
        """
        units = max(1, min(units, self._max_reads))
        try:
            granted, wait_ms = await self._spend_reads(
                keys=[subject_reads_key(subject_key)],
                args=[secrets.token_hex(8), units, self._max_reads, self._window_ms],
            )
        except RedisError as exc:
            logger.warning("read budget unavailable: %s", type(exc).__name__)
            return
        if not granted:
            detail = "Too many reads (lists, results, events); wait before reading again"
            self._refuse("reads_per_minute", detail, _wait_s(wait_ms))

    def _refuse(self, reason: str, detail: str, retry_after_s: int) -> NoReturn:
        self.refusals[reason] += 1
        logger.info("limit refused: %s", reason, extra={"fields": {"limit": reason}})
        raise TooManyRequests(detail, reason=reason, retry_after_s=retry_after_s)
