"""A session after its create, the same for every surface: found, finished, deleted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from broker.errors import NotFound, UpstreamNotFound
from broker.events.results import public_result
from broker.store.records import FINAL_STATUSES, SessionRecord, SessionStore

if TYPE_CHECKING:  # the background result fetcher (broker.events) is itself one of the services
    from broker.identity.credentials import Subject
    from broker.policy.limits import Limits
    from broker.web.resources import Services


async def owned_record(found: Services, subject: Subject, session_id: str) -> SessionRecord:
    """The subject's session; anyone else's is indistinguishable from a missing one."""
    record = await found.store.load(subject.key, session_id)
    if record is None:
        raise NotFound("No such session")
    return record


async def finish_if_final(
    store: SessionStore, limits: Limits, record: SessionRecord, result: Mapping[str, Any]
) -> bool:
    """Cache a final result and free the session's leases; False while it is not final."""
    if result.get("status") not in FINAL_STATUSES:
        return False
    await store.save_final_result(record, result)
    # Over at Gladia: the session no longer counts against any live limit.
    await limits.release_lease(record.owner, record.id)
    return True


async def fetch_result(found: Services, record: SessionRecord) -> dict[str, Any]:
    """Gladia's result for the session, sanitised, cached once it is final."""
    cached = await found.store.load_result(record)
    if cached is not None:
        return cached
    try:
        upstream = await found.gladia.get_live_session(record.id)
    except UpstreamNotFound:
        raise NotFound("No such session") from None
    result = public_result(upstream)
    await finish_if_final(found.store, found.limits, record, result)
    return result


async def delete_everywhere(found: Services, record: SessionRecord) -> None:
    """Delete at Gladia (which refuses while the session is live), then everything kept here."""
    await found.gladia.delete_live_session(record.id)
    await found.store.delete(record)
    await found.events.forget(record.owner, record.id, record.request_id)
    await found.limits.release_lease(record.owner, record.id)
