"""The simulator's settings: one frozen value, read once and handed down."""

from __future__ import annotations

from dataclasses import dataclass, field

MIB = 1024 * 1024


@dataclass(frozen=True)
class SimulatorConfig:
    """How the simulated Gladia account and its live sessions behave."""

    # Secrets stay out of reprs and logs.
    api_key: str = field(repr=False)
    # Account concurrency: POST /v2/live answers 429 while this many sessions are not done/error.
    max_live_sessions: int = 30
    # A live socket with no audio for this long is finished (close 1000); a dropped session that
    # nobody resumes within this long is finished in the background.
    idle_timeout_s: float = 30.0
    # Hard stop of a session, counted from its first audio chunk.
    max_duration_s: float = 3 * 3600.0
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    callback_timeout_s: float = 5.0
    # Total attempts per callback or webhook, with exponential backoff between them.
    callback_attempts: int = 4
    callback_backoff_s: float = 0.2
    # Callbacks and webhooks in flight at once, across sessions; the others wait their turn (each
    # session's still in order), so thousands of sessions cannot swamp the HTTP client's pool.
    callback_concurrency: int = 32
    # Pause between end_recording and the post-processing messages.
    post_processing_delay_s: float = 0.0
    # A session URL that nobody connects to ends with status "error" (408) after this long.
    session_start_timeout_s: float = 600.0
    # Frames larger than this close the socket with 1009, as Gladia does above 1 MiB.
    max_frame_bytes: int = MIB
    # Audio time between two partial transcripts of the same utterance.
    partial_interval_s: float = 0.2
    # Oldest REST calls are forgotten beyond this many, so long runs keep bounded memory.
    max_recorded_calls: int = 10_000
    # How long a "timeout" fault holds a request when the client does not give up first.
    fault_timeout_s: float = 300.0
    # How often the background sweeper looks for expired sessions.
    sweep_interval_s: float = 0.05
