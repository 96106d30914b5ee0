"""The relay: every stored event POSTed to the app's backend, signed with Standard Webhooks.

Work comes from the `relay` job queue (one member per session, marked on every stored event),
so it survives restarts and is shared by instances; a lease per session keeps its events in
order, and a cursor in Redis says how far the backend has acknowledged. Delivery is at least
once: an event whose answer was lost is sent again with the same `webhook-id`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx

from broker.events.jobs import JobOutcome, Lease, split_member
from broker.events.webhooks import secret_key, signed_headers
from broker.settings import Settings
from broker.store.events import EventStore, StreamEntry
from broker.store.records import SessionStore

logger = logging.getLogger("broker.relay")

BATCH = 50


def open_relay_client(settings: Settings) -> httpx.AsyncClient:
    """The client for the app's backend: its own timeouts, no proxies from the environment."""
    timeout = httpx.Timeout(settings.relay_timeout_s, connect=min(settings.relay_timeout_s, 5))
    return httpx.AsyncClient(
        timeout=timeout,
        limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
        headers={"user-agent": "gladia-broker-relay"},
        trust_env=False,
        follow_redirects=False,
    )


def relay_body(session_id: str, subject: str | None, entry: StreamEntry) -> bytes:
    """What the backend receives for one event."""
    body: dict[str, Any] = {
        "type": entry.event,
        "session_id": session_id,
        "subject": subject,
        "event_id": entry.id,
        "source": entry.source,
        "received_at": entry.received_at,
        "payload": entry.payload,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def relay_message_id(session_id: str, entry: StreamEntry) -> str:
    """Stable for one event across retries and instances, so the backend can de-duplicate."""
    return f"{session_id}_{entry.id}"


class Relay:
    """The relay job: send one session's events after its cursor, in order."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        events: EventStore,
        sessions: SessionStore,
        settings: Settings,
    ) -> None:
        if settings.relay_url is None or settings.relay_secret is None:
            raise ValueError("the relay needs BROKER_RELAY_URL and BROKER_RELAY_SECRET")
        self._http = http
        self._events = events
        self._sessions = sessions
        self._url = settings.relay_url
        self._key = secret_key(str(settings.relay_secret))
        self._timeout_s = settings.relay_timeout_s

    async def __call__(self, member: str, lease: Lease) -> JobOutcome:
        owner, session_id = split_member(member)
        cursor = await self._events.relay_cursor(owner, session_id)
        entries = await self._events.read(owner, session_id, cursor, BATCH)
        if not entries:
            return JobOutcome.DONE
        subject = await self._subject(owner, session_id)
        for entry in entries:
            if not await lease.renew():
                return JobOutcome.MORE  # the lease was lost: whoever holds it carries on
            if not await self._send(session_id, subject, entry):
                return JobOutcome.LATER
            await self._events.advance_relay_cursor(owner, session_id, entry.id)
        return JobOutcome.MORE if len(entries) == BATCH else JobOutcome.DONE

    async def _subject(self, owner: str, session_id: str) -> str | None:
        record = await self._sessions.load(owner, session_id)
        if record is None:
            return None
        return (await self._events.binding(owner, record.request_id)).subject

    async def _send(self, session_id: str, subject: str | None, entry: StreamEntry) -> bool:
        body = relay_body(session_id, subject, entry)
        headers = signed_headers(
            self._key, relay_message_id(session_id, entry), int(time.time()), body
        )
        headers["content-type"] = "application/json"
        try:
            async with asyncio.timeout(self._timeout_s):
                async with self._http.stream(
                    "POST", self._url, content=body, headers=headers
                ) as response:
                    status = response.status_code
        except (TimeoutError, httpx.HTTPError) as exc:
            logger.warning("relay delivery failed: %s", type(exc).__name__)
            return False
        if not 200 <= status < 300:
            logger.warning("relay delivery refused with %s", status)
            return False
        return True
