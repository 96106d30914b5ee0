"""A create's lease confirmation, as `broker.sessions.create_writes` runs it, for the limits."""

from __future__ import annotations

import asyncio

import redis.asyncio as redis

from broker.policy.limits import CONFIRM_LEASE, Limits
from broker.store.scripts import ComposedScript


async def confirm_leases(
    client: redis.Redis, limits: Limits, subject_key: str, request_id: str, session_id: str
) -> None:
    """The subject's pending lease made the session's own (on the owner's slot), and the
    account's beside it."""
    subject_step = limits.confirm_subject_step(subject_key, request_id, session_id)
    await asyncio.gather(
        ComposedScript(client, [CONFIRM_LEASE])(subject_step),
        limits.confirm_account(request_id, session_id),
    )
