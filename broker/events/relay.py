"""The relay: every stored event POSTed to the app's backend, signed with Standard Webhooks.

Work comes from the `relay` job queue (one member per session, marked on every stored event),
so it survives restarts and is shared by instances; a lease per session keeps its events in
order, and a cursor in Redis says how far the backend has acknowledged. Delivery is at least
once: an event whose answer was lost is sent again with the same `webhook-id`.

An event the backend has refused `BROKER_RELAY_MAX_ATTEMPTS` times, or for
`BROKER_RELAY_MAX_AGE_S` since its first failure, becomes a dead letter: the session is parked
at that event (its cursor stays, and its later events wait behind it, so the order holds) until
an operator replays it (`broker relay replay ID`, `DeadLetters.replay`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import httpx

from broker.events.intake import RELAY_QUEUE
from broker.events.jobs import JobOutcome, Lease, split_member
from broker.events.webhooks import secret_key, signed_headers
from broker.observability.metrics import Metrics
from broker.settings import Settings
from broker.store.events import DeadLetter, EventStore, StreamEntry
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


def relay_body(
    session_id: str, subject: str | None, entry: StreamEntry, client_ref: str | None = None
) -> bytes:
    """What the backend receives for one event; `client_ref` when the session's token had one."""
    body: dict[str, Any] = {
        "type": entry.event,
        "session_id": session_id,
        "subject": subject,
        "event_id": entry.id,
        "source": entry.source,
        "received_at": entry.received_at,
        "payload": entry.payload,
    }
    if client_ref is not None:
        body["client_ref"] = client_ref
    return json.dumps(body, separators=(",", ":")).encode()


def relay_message_id(session_id: str, entry: StreamEntry) -> str:
    """Stable for one event across retries and instances, so the backend can de-duplicate."""
    return f"{session_id}_{entry.id}"


class DeadLetters:
    """The relay's dead letters, as operators list and replay them (and metrics count them)."""

    def __init__(self, events: EventStore) -> None:
        self._events = events

    async def add(self, letter: DeadLetter) -> str:
        """Park the letter's session at its event; the letter's id."""
        letter_id = await self._events.dead_letter(RELAY_QUEUE, letter)
        owner, session_id = split_member(letter.member)
        await self._events.forget_relay_failure(owner, session_id)
        return letter_id

    async def oldest(self, count: int) -> list[DeadLetter]:
        """The oldest `count` letters, oldest first."""
        return await self._events.dead_letters(RELAY_QUEUE, count)

    async def count(self) -> int:
        return await self._events.count_dead_letters(RELAY_QUEUE)

    async def replay(self, letter_id: str) -> str | None:
        """Its session's deliveries resumed from where they stopped; the session id, or None."""
        member = await self._events.replay_dead_letter(RELAY_QUEUE, letter_id)
        if member is None:
            return None
        owner, session_id = split_member(member)
        # Attempts start again from zero (a letter added by a crashed instance may have left some).
        await self._events.forget_relay_failure(owner, session_id)
        return session_id


class Relay:
    """The relay job: send one session's events after its cursor, in order."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        events: EventStore,
        sessions: SessionStore,
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        if settings.relay_url is None or settings.relay_secret is None:
            raise ValueError("the relay needs BROKER_RELAY_URL and BROKER_RELAY_SECRET")
        self._http = http
        self._events = events
        self._sessions = sessions
        self._url = settings.relay_url
        self._key = secret_key(str(settings.relay_secret))
        self._timeout_s = settings.relay_timeout_s
        self._max_attempts = settings.relay_max_attempts
        self._max_age_ms = settings.relay_max_age_s * 1000
        self._metrics = metrics
        self._dead_letters = DeadLetters(events)

    async def __call__(self, member: str, lease: Lease) -> JobOutcome:
        owner, session_id = split_member(member)
        cursor = await self._events.relay_cursor(owner, session_id)
        entries = await self._events.read(owner, session_id, cursor, BATCH)
        if not entries:
            return JobOutcome.DONE
        subject, client_ref = await self._subject_and_ref(owner, session_id)
        for entry in entries:
            if not await lease.renew():
                return JobOutcome.MORE  # the lease was lost: whoever holds it carries on
            error = await self._send(session_id, subject, entry, client_ref)
            if error is not None:
                return await self._failed(member, entry, error)
            await self._events.advance_relay_cursor(owner, session_id, entry.id)
        return JobOutcome.MORE if len(entries) == BATCH else JobOutcome.DONE

    async def _failed(self, member: str, entry: StreamEntry, error: str) -> JobOutcome:
        """Try again later, or, past either cap, make the delivery a dead letter."""
        self._metrics.relay_failures.labels(error).inc()
        owner, session_id = split_member(member)
        failure = await self._events.record_relay_failure(owner, session_id, entry.id, error)
        if failure.attempts < self._max_attempts and failure.age_ms < self._max_age_ms:
            return JobOutcome.LATER
        letter_id = await self._dead_letters.add(
            DeadLetter(
                member=member,
                session_id=session_id,
                event_id=entry.id,
                event_type=entry.event,
                attempts=failure.attempts,
                error=error,
                first_failed_ms=failure.first_failed_ms,
            )
        )
        self._metrics.relay_dead_letters.inc()
        logger.warning(
            "relay delivery dead-lettered after %d attempts: %s",
            failure.attempts,
            error,
            extra={"fields": {"dead_letter": letter_id}},
        )
        return JobOutcome.PARKED

    async def _subject_and_ref(self, owner: str, session_id: str) -> tuple[str | None, str | None]:
        """The session's user and its `client_ref`, as its record keeps them."""
        record = await self._sessions.load(owner, session_id)
        if record is None:
            return None, None
        subject = record.subject
        if subject is None:
            subject = await self._events.legacy_subject(owner, record.request_id)
        return subject, record.client_ref

    async def _send(
        self, session_id: str, subject: str | None, entry: StreamEntry, client_ref: str | None
    ) -> str | None:
        """Deliver one event: None once the backend took it, else what went wrong (a class name
        or `http_<status>`, never the backend's words)."""
        body = relay_body(session_id, subject, entry, client_ref)
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
            return type(exc).__name__
        if not 200 <= status < 300:
            logger.warning("relay delivery refused with %s", status)
            return f"http_{status}"
        return None
