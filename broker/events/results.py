"""A session's result: fetched from Gladia, cut down to what its owner may see, cached once final.

Two callers: the owner asking for it (`fetch`), and the `result-fetch` job queued by the
session's `live.end_session` event (`ResultFetcher.__call__`), so the result is kept, the
session's leases are freed and its audio is counted into its owner's usage even when nobody asks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broker.errors import NotFound, UpstreamError, UpstreamNotFound
from broker.events.jobs import JobOutcome, Lease, split_member
from broker.gladia.client import GladiaClient
from broker.policy.init_body import CLIENT_METADATA_KEY
from broker.policy.limits import Limits
from broker.policy.usage import Usage
from broker.store.records import SessionStore
from broker.store.session_record import FINAL_STATUSES, SessionRecord

# The callback URL carries a capability; custom_metadata and post_session_metadata are the
# broker's and Gladia's bookkeeping, not the user's.
_BROKER_FIELDS = ("custom_metadata", "post_session_metadata")
_REQUEST_FIELDS = ("callback_config", "callback", "custom_metadata")


def public_result(session: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `GET /v2/live/{id}` without the callback URL or broker metadata."""
    result = {key: value for key, value in session.items() if key not in _BROKER_FIELDS}
    metadata = session.get("custom_metadata")
    if isinstance(metadata, Mapping) and CLIENT_METADATA_KEY in metadata:
        result["custom_metadata"] = metadata[CLIENT_METADATA_KEY]  # the owner's own, as sent
    params = result.get("request_params")
    if isinstance(params, Mapping):
        result["request_params"] = {
            key: value for key, value in params.items() if key not in _REQUEST_FIELDS
        }
    return result


class ResultFetcher:
    """Gladia's result of one session, kept in Redis once it is final."""

    def __init__(
        self,
        sessions: SessionStore,
        gladia: GladiaClient,
        limits: Limits,
        usage: Usage | None = None,
    ) -> None:
        self._sessions = sessions
        self._gladia = gladia
        self._limits = limits
        self._usage = usage

    async def fetch(self, record: SessionRecord) -> dict[str, Any]:
        """The owner's view of the result: the cached one, else Gladia's as it is now."""
        cached = await self._sessions.load_result(record)
        if cached is not None:
            return cached
        try:
            result, _ = await self._from_gladia(record)
        except UpstreamNotFound:
            raise NotFound("No such session") from None
        return result

    async def finish_if_final(self, record: SessionRecord, result: Mapping[str, Any]) -> bool:
        """Count a final result's audio, cache it and free the session's leases; False while it
        is not final. Safe to run again: the usage script counts a session once."""
        if result.get("status") not in FINAL_STATUSES:
            return False
        if self._usage is not None:
            # Before the result is cached: once cached, nothing calls this again for the session.
            await self._usage.count(record.owner, record.id, result, record.client_ref)
        await self._sessions.save_final_result(record, result)
        # Over at Gladia: the session no longer counts against any live limit.
        await self._limits.release_lease(record.owner, record.id)
        return True

    async def __call__(self, member: str, lease: Lease) -> JobOutcome:
        """The `result-fetch` job: asks again later until Gladia's result is final."""
        owner, session_id = split_member(member)
        record = await self._sessions.load(owner, session_id)
        if record is None or await self._sessions.load_result(record) is not None:
            return JobOutcome.DONE
        try:
            _, final = await self._from_gladia(record)
        except UpstreamNotFound:
            return JobOutcome.DONE
        except UpstreamError:
            return JobOutcome.LATER
        return JobOutcome.DONE if final else JobOutcome.LATER

    async def _from_gladia(self, record: SessionRecord) -> tuple[dict[str, Any], bool]:
        """Gladia's result as the owner may see it, and whether it was final (then cached)."""
        result = public_result(await self._gladia.get_live_session(record.id))
        return result, await self.finish_if_final(record, result)
