"""Live sessions and the in-memory store that finds them by id and by socket token."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any, Literal, Protocol

from broker.simulator.config import SimulatorConfig
from broker.simulator.errors import GladiaError
from broker.simulator.pcm import AudioFormat
from broker.simulator.timestamps import utc_now
from broker.simulator.transcriber import Transcriber, TranscriberSettings, Utterance
from broker.simulator.validation import ValidatedRequest

Status = Literal["queued", "processing", "done", "error"]


class SocketLink(Protocol):
    """The live socket attached to a session, as the rest of the simulator sees it."""

    def request_close(self, code: int) -> None:
        """Ask the socket to close with ``code`` (safe from any thread)."""

    async def send(self, text: str) -> None:
        """Send a text frame, or nothing once the socket is gone."""

    async def wait_closed(self, timeout_s: float) -> None:
        """Wait until the socket's handler has finished."""


class LiveSession:
    """One Gladia live session: its parameters, its audio, its transcript and its status."""

    # Slots: a load test holds tens of thousands of sessions, each one then costs the GC less.
    __slots__ = (
        "_file_id",
        "_messages",
        "_partial_interval_s",
        "_transcriber",
        "audio",
        "bytes_received",
        "completed_at",
        "completed_mono",
        "connected_once",
        "created_at",
        "created_mono",
        "custom_metadata",
        "error_code",
        "id",
        "last_activity_mono",
        "params",
        "recording_ended",
        "recording_started_mono",
        "region",
        "socket",
        "status",
        "token",
    )

    def __init__(
        self, validated: ValidatedRequest, region: str | None, config: SimulatorConfig
    ) -> None:
        self.id = str(uuid.uuid4())
        # The socket credential is opaque and distinct from the id, as in Gladia's OpenAPI example.
        self.token = str(uuid.uuid4())
        self._file_id: str | None = None
        self._transcriber: Transcriber | None = None
        self._partial_interval_s = config.partial_interval_s
        self.params: dict[str, Any] = validated.params
        self.custom_metadata: Any = validated.custom_metadata
        self.region = region
        self.created_at: datetime = utc_now()
        self.completed_at: datetime | None = None
        self.status: Status = "queued"
        self.error_code: int | None = None
        self.bytes_received = 0
        self.audio = bytearray()
        # Created on the first message: an idle session then holds no list for the GC to walk.
        self._messages: list[str] | None = None
        self.created_mono = time.monotonic()
        self.last_activity_mono = self.created_mono
        self.recording_started_mono: float | None = None
        self.completed_mono: float | None = None
        self.recording_ended = False
        self.connected_once = False
        self.socket: SocketLink | None = None

    @property
    def transcriber(self) -> Transcriber:
        """The session's transcriber, made on first use (many sessions never stream audio)."""
        if self._transcriber is None:
            settings = TranscriberSettings.from_params(self.params, self._partial_interval_s)
            self._transcriber = Transcriber(settings)
        return self._transcriber

    @property
    def file_id(self) -> str:
        """The id of the recorded audio file."""
        if self._file_id is None:
            self._file_id = str(uuid.uuid4())
        return self._file_id

    @property
    def messages(self) -> list[str]:
        """The messages sent on the socket (as JSON text), in order."""
        return self._messages if self._messages is not None else []

    def record_message(self, text: str) -> None:
        """Remember a message sent on the socket."""
        if self._messages is None:
            self._messages = []
        self._messages.append(text)

    @property
    def request_params(self) -> dict[str, Any]:
        """The effective parameters, every default filled in."""
        return self.params

    @property
    def audio_format(self) -> AudioFormat:
        """The layout of the session's raw audio."""
        p = self.params
        return AudioFormat(p["encoding"], p["bit_depth"], p["sample_rate"], p["channels"])

    @property
    def utterances(self) -> list[Utterance]:
        """The final utterances produced so far."""
        return self._transcriber.utterances if self._transcriber else []

    @property
    def recording_duration(self) -> float:
        """Seconds of audio received, from the byte count."""
        return round(self.bytes_received / self.audio_format.bytes_per_second, 3)

    @property
    def language(self) -> str:
        """The transcription language: the first configured one, else English."""
        languages = self.params["language_config"]["languages"]
        return str(languages[0]) if languages else "en"

    @property
    def is_live(self) -> bool:
        """Whether the session still counts against the account's concurrency."""
        return self.status in ("queued", "processing")

    @property
    def accepts_connection(self) -> bool:
        """Whether a socket may (re)connect: the recording has not ended."""
        return self.is_live and not self.recording_ended

    def waiting_deadline(self, config: SimulatorConfig) -> float | None:
        """When a session with no socket expires (monotonic), or None if it is not waiting."""
        if self.socket is not None or not self.accepts_connection:
            return None
        if not self.connected_once:
            return self.created_mono + config.session_start_timeout_s
        return self.live_deadline(config)

    def live_deadline(self, config: SimulatorConfig) -> float:
        """When the recording stops by itself: idle timeout or maximum duration (monotonic)."""
        deadline = self.last_activity_mono + config.idle_timeout_s
        if self.recording_started_mono is not None:
            deadline = min(deadline, self.recording_started_mono + config.max_duration_s)
        return deadline


class SessionStore:
    """Sessions by id and by token, and the count of those still live."""

    def __init__(self, config: SimulatorConfig) -> None:
        self._config = config
        self.sessions: dict[str, LiveSession] = {}
        self._by_token: dict[str, LiveSession] = {}
        self._live: set[str] = set()

    def create(self, validated: ValidatedRequest, region: str | None) -> LiveSession:
        """Open a session, or refuse with 429 when the account's concurrency is used up."""
        if len(self._live) >= self._config.max_live_sessions:
            raise GladiaError(429, "Too many concurrent live sessions")
        session = LiveSession(validated, region, self._config)
        self.sessions[session.id] = session
        self._by_token[session.token] = session
        self._live.add(session.id)
        return session

    def by_token(self, token: str) -> LiveSession | None:
        """Find the session a socket token belongs to."""
        return self._by_token.get(token)

    def get(self, session_id: str) -> LiveSession:
        """Find a session by id, or 404."""
        session = self.sessions.get(session_id)
        if session is None:
            raise GladiaError(404, "Live transcription not found")
        return session

    def settle(self, session: LiveSession, status: Status, error_code: int | None = None) -> None:
        """Record that a session is done or failed; it no longer counts as live."""
        session.status = status
        session.error_code = error_code
        session.completed_at = utc_now()
        session.completed_mono = time.monotonic()
        self._live.discard(session.id)

    def delete(self, session: LiveSession) -> None:
        """Forget a finished session and its audio."""
        self.sessions.pop(session.id, None)
        self._by_token.pop(session.token, None)

    def clear(self) -> list[LiveSession]:
        """Forget every session; return them so their sockets can be closed."""
        forgotten = list(self.sessions.values())
        self.sessions.clear()
        self._by_token.clear()
        self._live.clear()
        return forgotten

    @property
    def live_count(self) -> int:
        """How many sessions count against the concurrency limit."""
        return len(self._live)
