"""Revoked credentials, in Redis so that a revocation counts at once on every instance.

One hash per subject (`broker.store.keys.subject_revocations_key`): `not-before` refuses every
credential issued at or before it (Unix seconds, to the microsecond), and `token:<id>` refuses
one token. Checking a request is one HMGET on that hash. A credential without an issue time
(the gateway's header: the gateway answers for its users) is not affected by `not-before`; one
without an id (a JWT without `jti`) cannot be revoked on its own.

The hash lives `BROKER_TOKEN_MAX_TTL_S` past the revocation that needs it longest, the longest a
broker token can outlive it; a revocation never shortens it, and `not-before` only moves
forward. JWTs are refused by `not-before` while the hash lives: give them lifetimes within
`BROKER_TOKEN_MAX_TTL_S` for a subject revocation to hold until they expire.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator, Sequence
from typing import NoReturn

import redis.asyncio as redis

from broker.errors import BrokerError, FieldProblem, InvalidFields, NotFound, Unauthorized
from broker.identity.credentials import Subject, subject_key
from broker.identity.grants import TokenIds
from broker.settings import Settings
from broker.store.keys import subject_revocations_key
from broker.store.scripts import LuaFunction, LuaScript, Step

NOT_BEFORE_FIELD = "not-before"

# keys: the subject's revocations. argv: field, Unix s, key TTL s. Keeps the larger time in the
# field, never shortens the key's TTL; returns the time the field holds.
_REVOKE = LuaFunction(
    "revoke",
    """
local function revoke(keys, argv)
  local held = redis.call('HGET', keys[1], argv[1])
  if not (held and tonumber(held) and tonumber(held) >= tonumber(argv[2])) then
    held = argv[2]
    redis.call('HSET', keys[1], argv[1], held)
  end
  local ttl = tonumber(argv[3])
  if redis.call('TTL', keys[1]) < ttl then
    redis.call('EXPIRE', keys[1], ttl)
  end
  return held
end
""",
    keys=1,
    args=3,
)


# keys: the subject's revocations. argv: the not-before field, the token's field. Returns both
# (false where unset), as HMGET does.
_READ = LuaFunction(
    "read_revocations",
    """
local function read_revocations(keys, argv)
  return redis.call('HMGET', keys[1], argv[1], argv[2])
end
""",
    keys=1,
    args=2,
)


# keys: the subject's revocations. argv: the not-before field, the token's field, the
# credential's issue time ('' when it has none). A guard (`broker.store.scripts.compose`): ''
# while the credential stands, else the reason it is refused; the same decision as `decide`.
_GUARD = LuaFunction(
    "revocation_guard",
    """
local function revocation_guard(keys, argv)
  local values = redis.call('HMGET', keys[1], argv[1], argv[2])
  if values[2] then return 'token_revoked' end
  if values[1] and argv[3] ~= '' then
    local not_before = tonumber(values[1])
    if not not_before or tonumber(argv[3]) <= not_before then return 'subject_revoked' end
  end
  return ''
end
""",
    keys=1,
    args=3,
)


def token_field(token_id: str) -> str:
    return f"token:{token_id}"


class Revocations:
    """Revokes tokens and subjects, and refuses the credentials they cover."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self._client = client
        self._ids = TokenIds(settings.secret_keys)
        self._max_ttl_s = settings.token_max_ttl_s
        self._revoke = LuaScript(client, _REVOKE)

    async def check(self, subject: Subject) -> None:
        """Unauthorized if the subject's credential, or the subject since then, is revoked."""
        step = self.read_step(subject)
        if step is not None:
            self.decide(subject, await self._client.hmget(step.keys[0], list(step.args)))

    def read_step(self, subject: Subject) -> Step | None:
        """What `check` reads, as a step of a script on the subject's slot, so that a read of
        the subject's own data checks the credential in the same round trip (the reconnect
        lookup); None when there is nothing to check."""
        grant = subject.grant
        if grant.issued_at is None and grant.token_id is None:
            return None  # nothing to compare: the gateway vouches for its users
        # No token id: a field no token has, so the step's shape stays the same.
        field = token_field(grant.token_id) if grant.token_id is not None else ""
        return Step(_READ, [subject_revocations_key(subject.key)], [NOT_BEFORE_FIELD, field])

    def guard_step(self, subject: Subject) -> Step | None:
        """The check as the guard of a script on the subject's slot, which runs the script's
        other steps only for a credential that stands (a create's admission); None when there
        is nothing to check. Its refusal goes to `refuse`."""
        read = self.read_step(subject)
        if read is None:
            return None
        issued_at = subject.grant.issued_at
        return Step(_GUARD, read.keys, [*read.args, "" if issued_at is None else repr(issued_at)])

    def decide(self, subject: Subject, values: Sequence[str | bytes | None]) -> None:
        """Refuse the subject on what `read_step` read (its `not-before` and token fields)."""
        grant = subject.grant
        not_before, token_revoked = values[0], values[1]
        if token_revoked is not None:
            self.refuse("token_revoked")
        # An unreadable not-before refuses too: only this module writes it.
        if (
            not_before is not None
            and grant.issued_at is not None
            and grant.issued_at <= _seconds(not_before)
        ):
            self.refuse("subject_revoked")

    @staticmethod
    def refuse(reason: str) -> NoReturn:
        """The 401 of a revoked credential: `reason` is `token_revoked` or `subject_revoked`."""
        if reason == "token_revoked":
            raise Unauthorized("This token is revoked", reason=reason)
        raise Unauthorized("This credential is revoked", reason="subject_revoked")

    async def revoke_token(self, token_id: str) -> None:
        """Refuse the token `token_id` from now on; NotFound if this broker never issued it."""
        owner = self._ids.subject_key(token_id)
        if owner is None:
            raise NotFound("No such token")
        # The token was signed at most BROKER_TOKEN_MAX_TTL_S ago: gone by the time this is.
        await self._revoke(
            [subject_revocations_key(owner)],
            [token_field(token_id), repr(time.time()), self._max_ttl_s],
        )

    async def revoke_subject(self, subject_id: str, not_before: float | None = None) -> float:
        """Refuse the subject's credentials issued at or before `not_before` (default now);
        returns the not-before that holds (a later one kept from before, if any)."""
        now = time.time()
        not_before = now if not_before is None else not_before
        # Tokens issued until `not_before` live at most BROKER_TOKEN_MAX_TTL_S past it.
        ttl_s = max(1, math.ceil(not_before + self._max_ttl_s - now))
        held = await self._revoke(
            [subject_revocations_key(subject_key(subject_id))],
            [NOT_BEFORE_FIELD, repr(float(not_before)), ttl_s],
        )
        return _seconds(held)


class PendingRevocation:
    """One request's revocation check, not made yet: made as the guard of the first script
    that can carry it (`guard_step`), else on its own (`check`), before the request answers any
    other refusal, so that a revoked credential is told 401 first, whatever else is wrong."""

    def __init__(self, revocations: Revocations, subject: Subject) -> None:
        self._revocations = revocations
        self._subject = subject
        self._made = False

    def guard_step(self) -> Step | None:
        """The check, for a script whose refusal goes to `refuse`; made once that script runs."""
        self._made = True
        return self._revocations.guard_step(self._subject)

    def refuse(self, reason: str) -> NoReturn:
        self._revocations.refuse(reason)

    async def check(self) -> None:
        """The check on its own, unless it is made already."""
        if not self._made:
            self._made = True
            await self._revocations.check(self._subject)

    @contextlib.asynccontextmanager
    async def first(self) -> AsyncIterator[None]:
        """Inside: a client error (4xx) raised waits for the check, which may turn it into 401."""
        try:
            yield
        except BrokerError as exc:
            if 400 <= exc.status_code < 500 and not isinstance(exc, Unauthorized):
                await self.check()
            raise


def not_before_value(value: object, max_ttl_s: int, now: float | None = None) -> float | None:
    """A requested `not_before` (Unix s, at most BROKER_TOKEN_MAX_TTL_S ahead), or InvalidFields."""
    if value is None:
        return None
    now = time.time() if now is None else now
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= now + max_ttl_s
    ):
        message = f"must be Unix seconds, from 0 to {max_ttl_s} s from now"
        raise InvalidFields(
            f"not_before {message}", problems=(FieldProblem("not_before", message),)
        )
    return float(value)


def _seconds(value: str | bytes) -> float:
    try:
        return float(value)
    except ValueError:
        return math.inf
