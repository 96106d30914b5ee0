"""Gladia's callbacks and webhooks turned into one verified, de-duplicated, ordered history.

Each delivery moves the session's status through a monotonic machine (`created` → `recording`
→ `ended` → `done`/`error`; a late or repeated event never moves it back). `live.end_session`
queues one fetch of the authoritative result, shared by every instance through a Redis job
queue: the delivery is answered at once, and a fetch cut short by a restart is picked up again
by whichever instance's worker sees it due.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from broker.errors import (
    BadRequest,
    NotFound,
    ServiceUnavailable,
)
from broker.events.callbacks import CallbackBinding, Delivery, parse_callback
from broker.events.jobs import QueuePolicy, job_member
from broker.store.events import EarlyDelivery, EventFields, EventStore, Outcome, Stored
from broker.store.session_record import SessionRecord

logger = logging.getLogger("broker.events")

RESULT_QUEUE = "result-fetch"
RELAY_QUEUE = "relay"
# Gladia may still be post-processing when it is asked: ask again, 1 s, 2 s, … up to a minute,
# for about half an hour. The lease covers one fetch with its deadline.
RESULT_FETCH_POLICY = QueuePolicy(lease_s=30.0, backoff_s=1.0, max_backoff_s=60.0, max_tries=40)
END_EVENT = "live.end_session"
WEBHOOK_DEFERRALS = 2
# Lifecycle moments happen once per session: whichever channel reports one first records it.
LIFECYCLE_EVENTS = frozenset(
    {"live.start_session", "live.start_recording", "live.end_recording", "live.end_session"}
)
_RECORDING = frozenset(
    {
        "live.start_recording",
        "live.transcript",
        "live.speech_start",
        "live.speech_end",
        "live.audio_chunk",
        "live.translation",
        "live.named_entity_recognition",
        "live.sentiment_analysis",
    }
)
_ENDED = frozenset(
    {
        "live.stop_recording",
        "live.end_recording",
        "live.post_transcript",
        "live.post_final_transcript",
        "live.post_summarization",
        "live.post_chapterization",
        "live.end_session",
    }
)


def status_after(event: str) -> str | None:
    """The status an event proves the session has reached (the store never moves it back)."""
    if event in _RECORDING:
        return "recording"
    if event in _ENDED:
        return "ended"
    return None


def delivery_digest(delivery: Delivery) -> str:
    """What makes two deliveries the same event: its name for lifecycle events, else its content."""
    if delivery.event in LIFECYCLE_EVENTS:
        return f"lifecycle:{delivery.event}"
    canonical = json.dumps(
        [delivery.event, delivery.payload], sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def event_fields(delivery: Delivery) -> EventFields:
    received_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return EventFields(
        digest=delivery_digest(delivery),
        event=delivery.event,
        source=delivery.source,
        received_at=received_at,
        payload_json=json.dumps(delivery.payload, separators=(",", ":")),
        status=status_after(delivery.event),
        is_end=delivery.event == END_EVENT,
    )


class EventIntake:
    """Receives deliveries for the broker's sessions and hands follow-up work to the job queues."""

    def __init__(
        self,
        store: EventStore,
        *,
        relay_enabled: bool,
        wake_result_fetch: Callable[[], None],
        wake_relay: Callable[[], None],
    ) -> None:
        self._store = store
        self._relay_enabled = relay_enabled
        self._wake_result_fetch = wake_result_fetch
        self._wake_relay = wake_relay

    async def take_early(self, record: SessionRecord, early: list[EarlyDelivery]) -> None:
        """After a create's record: store the callbacks that came before it, as if now."""
        for kept in early:
            if kept.session_id != record.id:
                logger.warning("an early callback named another session; dropped")
                continue
            delivery = Delivery(
                kept.session_id, kept.event, json.loads(kept.payload_json), "callback"
            )
            stored = await self._store.store_event(record.owner, record.id, event_fields(delivery))
            await self._follow_up(record.owner, record.id, delivery, stored)

    async def receive_callback(self, binding: CallbackBinding, raw: bytes) -> Outcome:
        """Store one callback for the session its capability is bound to."""
        delivery = parse_callback(raw)
        stored = await self._store.store_callback(
            binding.owner, binding.request_id, delivery.session_id, event_fields(delivery)
        )
        if stored.outcome is Outcome.UNKNOWN:
            raise NotFound()
        if stored.outcome is Outcome.MISMATCH:
            raise BadRequest("id is not the session this callback URL belongs to")
        if stored.outcome is Outcome.FULL:
            raise ServiceUnavailable("Too many deliveries for this session", retry_after_s=60)
        await self._follow_up(binding.owner, delivery.session_id, delivery, stored)
        return stored.outcome

    async def receive_webhook(self, message_id: str, delivery: Delivery | None) -> Outcome:
        """Store one verified account webhook; those about other sessions are acknowledged only."""
        if await self._store.webhook_seen(message_id):
            return Outcome.DUPLICATE
        owner = None
        if delivery is not None:
            owner = await self._store.session_owner(delivery.session_id)
        # Gladia announces a session as it creates it, so `live.start_session` can arrive before
        # the broker has recorded Gladia's answer. Sent back a couple of times, it comes again
        # once the session is known; a session of another integration on the same account stays
        # unknown and is then acknowledged.
        if (
            delivery is not None
            and owner is None
            and await self._store.defer_webhook(message_id) <= WEBHOOK_DEFERRALS
        ):
            raise ServiceUnavailable("The session is not known yet", retry_after_s=5)
        outcome = Outcome.UNKNOWN
        if delivery is not None and owner is not None:
            fields = event_fields(delivery)
            stored = await self._store.store_event(owner, delivery.session_id, fields)
            await self._follow_up(owner, delivery.session_id, delivery, stored)
            outcome = stored.outcome
        # Remembered only once handled, so a failure above leaves the sender's retry to finish it.
        await self._store.remember_webhook(message_id)
        return outcome

    async def _follow_up(
        self, owner: str, session_id: str, delivery: Delivery, stored: Stored
    ) -> None:
        # Duplicates queue the work again too: a crash after storing and before queueing is
        # recovered by the sender's retry. Queueing is idempotent.
        if stored.outcome not in (Outcome.STORED, Outcome.DUPLICATE):
            return
        member = job_member(owner, session_id)
        if self._relay_enabled:
            await self._store.mark(RELAY_QUEUE, member)
            self._wake_relay()
        if delivery.event == END_EVENT:
            await self._store.mark(RESULT_QUEUE, member)
            self._wake_result_fetch()
