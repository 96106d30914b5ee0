"""What a create writes once Gladia has answered, in as few round trips as the slots allow.

On the owner's hash slot, one script: the record (with the user's id only for the relay) and
its index entry, the subject's lease made the session's own (on one Redis node, where slots do
not apply, the account's too), and, when Gladia sends callbacks, the callbacks that came before
the record (with `BROKER_LEGACY_RECORDS`, also the callback binding earlier versions read).
Beside it, on their own slots: the account's lease on a Cluster, and the session's owner for
account webhooks (only when webhooks are configured: nothing else reads it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from redis.exceptions import ResponseError

from broker.policy.limits import CONFIRM_LEASE, CONFIRM_LEASE_ANSWERED, Limits
from broker.store.events import (
    LEGACY_BINDING,
    TAKE_EARLY_CALLBACKS,
    EarlyDelivery,
    EventStore,
    early_deliveries,
)
from broker.store.records import SAVE_RECORD, SessionStore
from broker.store.scripts import ComposedScript
from broker.store.session_record import SessionRecord


@dataclass(frozen=True)
class Written:
    """The outcome of each write; an exception where one failed."""

    record: BaseException | None
    account_lease: BaseException | None
    session_owner: BaseException | None
    early: list[EarlyDelivery]


class CreateWrites:
    """The scripts a create's writes run as, composed once for this instance's settings."""

    def __init__(
        self,
        client: redis.Redis,
        store: SessionStore,
        limits: Limits,
        events: EventStore,
        *,
        take_early: bool,
        keep_subject: bool,
        note_session_owner: bool,
        legacy_binding: bool = False,
    ) -> None:
        self._store = store
        self._limits = limits
        self._events = events
        self._take_early = take_early
        self._keep_subject = keep_subject
        self._note_session_owner = note_session_owner
        self._legacy_binding = legacy_binding
        # On one node the account's lease is confirmed in the same script: a round trip fewer.
        self._account_in_script = limits.one_node
        functions = [SAVE_RECORD, CONFIRM_LEASE]
        if self._account_in_script:
            functions.append(CONFIRM_LEASE_ANSWERED)
        if legacy_binding:
            functions.append(LEGACY_BINDING)
        if take_early:
            functions.append(TAKE_EARLY_CALLBACKS)
        self._owner_slot = ComposedScript(client, functions)

    async def write(
        self, record: SessionRecord, subject_id: str, *, lease_s: float | None = None
    ) -> Written:
        """Every write at once; none is retried, and a failure of one does not stop the others.

        The session's leases last `lease_s` when that is shorter than `BROKER_LEASE_TTL_S` (a
        token's `max_duration_s`). When the record's script fails, the create's leases are
        released before returning (a token's use stays spent: Gladia created the session).
        """
        kept = dataclasses.replace(record, subject=subject_id) if self._keep_subject else record
        steps = [
            self._store.save_step(kept),
            self._limits.confirm_subject_step(record.owner, record.request_id, record.id, lease_s),
        ]
        if self._account_in_script:
            steps.append(self._limits.confirm_account_step(record.request_id, record.id, lease_s))
        if self._legacy_binding:
            subject = subject_id if self._keep_subject else None
            steps.append(
                self._events.legacy_binding_step(
                    record.owner, record.request_id, record.id, subject
                )
            )
        if self._take_early:
            steps.append(self._events.take_early_step(record.owner, record.request_id))
        script = self._owner_slot(*steps)
        account = (
            None
            if self._account_in_script
            else self._limits.confirm_account(record.request_id, record.id, lease_s)
        )
        noted = (
            self._events.note_session_owner(record.id, record.owner)
            if self._note_session_owner
            else None
        )
        owner_slot: Any
        account_lease: object = None
        session_owner: object = None
        if account is None and noted is None:
            owner_slot = await _settled(script)  # one round trip: no tasks to gather
        else:
            owner_slot, account_lease, session_owner = await asyncio.gather(
                script, account or _nothing(), noted or _nothing(), return_exceptions=True
            )
        early: list[EarlyDelivery] = []
        if isinstance(owner_slot, BaseException):
            # Unrecorded, the session cannot be reached again: it must not hold a lease for
            # hours. The subject's lease may still be pending (its confirmation was in the
            # script), the account's may be confirmed already: both names go, in both sets.
            for lease_id in (record.request_id, record.id):
                with contextlib.suppress(Exception):
                    await self._limits.release_lease(record.owner, lease_id)
        else:
            if self._take_early:
                early = early_deliveries(owner_slot[-1])
            if self._account_in_script and owner_slot[2] != 1:
                account_lease = ResponseError(str(owner_slot[2]))
        return Written(
            record=owner_slot if isinstance(owner_slot, BaseException) else None,
            account_lease=account_lease if isinstance(account_lease, BaseException) else None,
            session_owner=session_owner if isinstance(session_owner, BaseException) else None,
            early=early,
        )


async def _nothing() -> None:
    return None


async def _settled(call: Awaitable[Any]) -> object:
    """What `call` answers, or the exception it raised, as `gather(return_exceptions=True)`."""
    try:
        return await call
    except Exception as exc:
        return exc
