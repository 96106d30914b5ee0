"""What happens to a live session: audio in, messages out (socket, callbacks, webhooks), the end."""

from __future__ import annotations

import asyncio
import json
import time

from broker.simulator import addons, messages, views
from broker.simulator.config import SimulatorConfig
from broker.simulator.delivery import Deliverer
from broker.simulator.messages import Message
from broker.simulator.sessions import LiveSession, SessionStore
from broker.simulator.transcriber import Event, TranscriptEvent

# Lifecycle moments that also go to the account's webhook endpoint.
WEBHOOK_EVENTS = frozenset({"start_session", "start_recording", "end_recording", "end_session"})


class SessionEngine:
    """Runs the Gladia timeline of each session and emits every message where it is due."""

    def __init__(self, config: SimulatorConfig, store: SessionStore, deliverer: Deliverer) -> None:
        self._config = config
        self._store = store
        self._deliverer = deliverer

    async def emit(self, session: LiveSession, message: Message) -> None:
        """Send a message to the socket and the callback URL, each as its configuration allows."""
        params = session.params
        flag = messages.flag_for(message)
        # start_session happens before any socket exists: callbacks only (the SDKs synthesize it).
        if params["messages_config"][flag] and message["type"] != "start_session":
            text = json.dumps(message, separators=(",", ":"))
            session.record_message(text)
            if session.socket is not None:
                await session.socket.send(text)
        callback = params["callback_config"]
        if params["callback"] and callback[flag]:
            self._deliverer.callback(session.id, callback["url"], message)
        if message["type"] in WEBHOOK_EVENTS:
            self._deliverer.webhook(session.id, message["type"])

    async def start(self, session: LiveSession) -> None:
        """Announce a session created by POST /v2/live (to callbacks and webhooks only)."""
        params = session.params
        wanted = params["callback"] and params["callback_config"]["receive_lifecycle_events"]
        if wanted or self._config.webhook_url is not None:
            await self.emit(session, messages.envelope(session.id, "start_session"))

    async def audio(self, session: LiveSession, chunk: bytes) -> None:
        """Take one audio chunk: acknowledge it and emit what the transcriber heard."""
        session.last_activity_mono = time.monotonic()
        if chunk and session.recording_started_mono is None:
            session.recording_started_mono = session.last_activity_mono
            session.status = "processing"
            await self.emit(session, messages.envelope(session.id, "start_recording"))
        first = session.bytes_received
        session.bytes_received += len(chunk)
        session.audio += chunk
        rate = session.audio_format.bytes_per_second
        times = (round(first / rate, 3), round(session.bytes_received / rate, 3))
        await self.emit(
            session, messages.audio_chunk_ack(session.id, (first, session.bytes_received), times)
        )
        await self._transcribe(session, session.transcriber.feed(chunk) if chunk else [])

    async def finish(self, session: LiveSession, stop_requested: bool) -> None:
        """End the recording, post-process, and settle the session as done (once)."""
        if session.recording_ended:
            return
        session.recording_ended = True
        if session.status == "queued":
            session.status = "processing"
        duration = session.recording_duration
        if stop_requested:
            left = session.transcriber.pending_duration()
            await self.emit(session, messages.stop_recording_ack(session.id, duration, left))
        await self._transcribe(session, session.transcriber.finish())
        ended = messages.envelope(
            session.id, "end_recording", data={"recording_duration": duration}
        )
        await self.emit(session, ended)
        if self._config.post_processing_delay_s > 0:
            await asyncio.sleep(self._config.post_processing_delay_s)
        transcription = messages.transcription(session.utterances, session.language)
        await self.emit(
            session, messages.envelope(session.id, "post_transcript", data=transcription)
        )
        final = {"metadata": views.result_metadata(session), "transcription": transcription}
        final.update(addons.result_addons(session.params, session.utterances))
        await self.emit(session, messages.envelope(session.id, "post_final_transcript", data=final))
        for message in addons.post_messages(session.id, session.params, session.utterances):
            await self.emit(session, message)
        self._store.settle(session, "done")
        await self.emit(session, messages.envelope(session.id, "end_session"))

    def expire_unused(self, session: LiveSession) -> None:
        """Fail a session whose URL nobody used in time."""
        session.recording_ended = True
        self._store.settle(session, "error", 408)

    async def _transcribe(self, session: LiveSession, events: list[Event]) -> None:
        for event in events:
            await self.emit(session, messages.from_event(session.id, event))
            if isinstance(event, TranscriptEvent) and event.is_final:
                for message in addons.realtime_messages(
                    session.id, session.params, event.utterance
                ):
                    await self.emit(session, message)
