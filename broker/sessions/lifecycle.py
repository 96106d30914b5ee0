"""A session after its create, the same for every surface: found, listed, read, deleted.

Reads spend the subject's read budget (`BROKER_READS_PER_MINUTE`, `Limits.spend_reads`) here,
for every surface at once: a page of the list, a result, events, the audio. Finding a session to
reconnect (`owned`) and deleting one do not: reconnecting must stay one Redis read.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from broker.errors import NotFound
from broker.events.results import ResultFetcher
from broker.gladia.client import GladiaClient, UpstreamStream
from broker.identity.credentials import Subject
from broker.identity.revocation import Revocations
from broker.policy.limits import Limits
from broker.store.events import EventStore
from broker.store.records import SessionPage, SessionStore
from broker.store.session_record import SessionRecord


class SessionLifecycle:
    """One subject's sessions as the routes reach them; another subject's are never found."""

    def __init__(
        self,
        store: SessionStore,
        events: EventStore,
        limits: Limits,
        gladia: GladiaClient,
        results: ResultFetcher,
        revocations: Revocations | None = None,
    ) -> None:
        self._revocations = revocations
        self._store = store
        self._events = events
        self._limits = limits
        self._gladia = gladia
        self._results = results

    async def owned(self, subject: Subject, session_id: str) -> SessionRecord:
        """The subject's session; anyone else's is indistinguishable from a missing one."""
        record = await self._store.load(subject.key, session_id)
        if record is None:
            raise NotFound("No such session")
        return record

    async def reconnect(self, subject: Subject, session_id: str) -> SessionRecord:
        """`owned`, for a subject authenticated without its revocation check: the check reads
        the same slot as the record, so both take one round trip (the reconnect lookup, the
        hot path)."""
        check = self._revocations.read_step(subject) if self._revocations else None
        if check is None:
            return await self.owned(subject, session_id)
        record, revoked = await self._store.load_with(subject.key, session_id, check)
        assert self._revocations is not None
        self._revocations.decide(subject, revoked)
        if record is None:
            raise NotFound("No such session")
        return record

    async def readable(self, subject: Subject, session_id: str) -> SessionRecord:
        """The subject's session for a read of its result, events or audio: one unit spent."""
        await self._limits.spend_reads(subject.key)
        return await self.owned(subject, session_id)

    async def page(self, subject: Subject, limit: int, cursor: str | None) -> SessionPage:
        """The subject's sessions, newest first, `limit` at a time after `cursor`: one unit."""
        await self._limits.spend_reads(subject.key)
        return await self._store.list_page(subject.key, limit, cursor)

    async def window(self, subject: Subject, offset: int, limit: int) -> SessionPage:
        """The subject's sessions, newest first, `limit` from position `offset` (Gladia's way).

        One unit per session listed (one for an empty page): the facade asks Gladia for each
        one's result. A cached result is charged too, so a page's price is known before any call.
        """
        page = await self._store.list_slice(subject.key, offset, limit)
        await self._limits.spend_reads(subject.key, max(1, len(page.records)))
        return page

    async def result(self, record: SessionRecord) -> dict[str, Any]:
        """Gladia's result for the session, sanitised, cached once it is final."""
        return await self._results.fetch(record)

    def audio(self, record: SessionRecord) -> AbstractAsyncContextManager[UpstreamStream]:
        """The session's recorded audio, streamed from Gladia."""
        return self._gladia.stream_file(record.id)

    async def delete(self, record: SessionRecord) -> None:
        """Delete at Gladia (which refuses while the session is live), then everything kept here."""
        await self._gladia.delete_live_session(record.id)
        await self._store.delete(record)
        await self._events.forget(record.owner, record.id, record.request_id)
        await self._limits.release_lease(record.owner, record.id)
