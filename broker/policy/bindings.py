"""A token's bindings against one create, checked before anything reaches Gladia.

A token minted with bindings (`broker.identity.grants.Bindings`) may create only what they
allow: sessions from the presets it names (a body without a preset is refused when presets are
bound), with at most `max_channels` channels. Its `max_sessions` is counted in Redis by the
subject's admission script (`Limits.admit`), and its `max_duration_s` shortens the session's
expiry and leases (`SessionCreator`): neither is a property of the body. A refusal is 403 with
the binding's reason, `binding_preset` or `binding_channels`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from broker.errors import Forbidden
from broker.policy.init_body import PRESET_FIELD

# Gladia's default when the init body has no `channels` (contract §1.2).
DEFAULT_CHANNELS = 1


class CreateBindings(Protocol):
    """What a create's check reads of a token's bindings (`Bindings` has it all)."""

    @property
    def presets(self) -> tuple[str, ...] | None: ...

    @property
    def max_channels(self) -> int | None: ...

    @property
    def max_sessions(self) -> int | None: ...


def check_bindings(
    bindings: CreateBindings,
    client_body: object,
    init_body: Mapping[str, Any],
    token_id: str | None,
) -> None:
    """Refuse a create its token's bindings do not allow, naming the binding and the value.

    `client_body` is what the client sent (its preset), `init_body` what Gladia would get
    (its channels, the preset applied).
    """
    if bindings.presets is not None:
        preset = client_body.get(PRESET_FIELD) if isinstance(client_body, Mapping) else None
        allowed = ", ".join(bindings.presets) or "none"
        if preset is None:
            raise Forbidden(
                f"This token may create sessions only from a preset ({allowed}); send 'preset'",
                reason="binding_preset",
            )
        if preset not in bindings.presets:
            # The policy has already checked that the preset exists: its name is the broker's.
            raise Forbidden(
                f"This token may not create sessions from the preset {preset!r} "
                f"(it allows {allowed})",
                reason="binding_preset",
            )
    if bindings.max_channels is not None:
        channels = init_body.get("channels", DEFAULT_CHANNELS)
        if isinstance(channels, int) and channels > bindings.max_channels:
            raise Forbidden(
                f"This token may not create sessions with {channels} channels "
                f"(at most {bindings.max_channels})",
                reason="binding_channels",
            )
    if bindings.max_sessions is not None and not token_id:
        # Uses are counted per token id: a bound credential without one cannot be counted.
        raise Forbidden(
            "This credential limits its sessions but has no id to count them by",
            reason="binding_sessions",
        )
