"""What a credential allows beyond naming its subject: the bindings fixed when a token is minted."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Bindings:
    """Limits a token carries; None is "no limit beyond the broker's own settings"."""

    presets: tuple[str, ...] | None = None  # the presets a session may be created from
    max_channels: int | None = None
    max_duration_s: int | None = None  # the longest a session created with it may last
    max_sessions: int | None = None  # sessions it may create in all (single use is 1)
    client_ref: str | None = None  # opaque, the app's own: carried to usage and events


NO_BINDINGS = Bindings()


@dataclass(frozen=True)
class Grant:
    """The credential behind a subject: its id and issue time (for revocation), its bindings.

    Broker tokens have all three; JWTs have an issue time and maybe an id; the gateway's header
    has none (the gateway answers for it).
    """

    token_id: str | None = None
    issued_at: float | None = None
    bindings: Bindings = field(default=NO_BINDINGS)


NO_GRANT = Grant()
