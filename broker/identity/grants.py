"""What a credential allows beyond naming its subject: the bindings fixed when a token is minted.

A mint request's binding fields are checked here (`read_bindings`), written into the
token under short claim names (`to_claims`) and read back on every verification
(`from_claims`). Token ids (`TokenIds`) carry the subject's handle, so revoking one finds the
subject's revocation hash without a lookup, and a MAC, so an id this broker never issued is
told apart from one it did without any stored list of tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import unicodedata
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import Secret

from broker.errors import FieldProblem
from broker.settings import GLADIA_MAX_SESSION_S

# The request fields `read_bindings` reads (beside `sub` and `ttl`).
BINDING_FIELDS = frozenset(
    {"preset", "presets", "max_channels", "max_duration_s", "max_sessions", "single_use",
     "client_ref"}
)  # fmt: skip
MAX_CLIENT_REF_LENGTH = 128
MAX_PRESETS = 32
# A bound a count may be compared with in Redis (Lua numbers are doubles) and still be exact.
MAX_SESSIONS_BOUND = 1_000_000
# Preset names as BROKER_POLICY_FILE accepts them (broker.policy.rules).
PRESET_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_PRESET_NAME = re.compile(PRESET_NAME_PATTERN)
# Records a field's problem (`read_bindings` collects them all).
_Refuse = Callable[[str, str], None]
# The claims a token carries its bindings under, kept short: the token is sent on every call.
_CLAIMS = {
    "presets": "pr",
    "max_channels": "ch",
    "max_duration_s": "du",
    "max_sessions": "ns",
    "client_ref": "cr",
}


@dataclass(frozen=True)
class BindingRules:
    """What a mint may bind: the broker's own caps, and the preset names it knows."""

    max_channels: int = 8
    max_duration_s: int = GLADIA_MAX_SESSION_S
    # None: the configured presets are not known here, so names are checked for shape only.
    presets: frozenset[str] | None = None


@dataclass(frozen=True)
class Bindings:
    """Limits a token carries; None is "no limit beyond the broker's own settings"."""

    presets: tuple[str, ...] | None = None  # the presets a session may be created from
    max_channels: int | None = None
    max_duration_s: int | None = None  # the longest a session created with it may last
    max_sessions: int | None = None  # sessions it may create in all (single use is 1)
    client_ref: str | None = None  # opaque, the app's own: carried to usage and events

    def as_response(self) -> dict[str, Any]:
        """The bindings that apply, under the request's field names (unset ones left out)."""
        shown: dict[str, Any] = {}
        for name in _CLAIMS:
            value = getattr(self, name)
            if value is not None:
                shown[name] = list(value) if name == "presets" else value
        return shown

    def to_claims(self) -> dict[str, Any]:
        """The bindings as token claims (unset ones left out)."""
        return {_CLAIMS[name]: value for name, value in self.as_response().items()}

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Bindings:
        """The bindings of a verified token's claims; ValueError if they are not well formed."""
        values = {name: claims.get(claim) for name, claim in _CLAIMS.items()}
        if all(value is None for value in values.values()):
            return NO_BINDINGS
        presets = values["presets"]
        if presets is not None and (
            not isinstance(presets, list) or not all(isinstance(name, str) for name in presets)
        ):
            raise ValueError("presets")
        for name in ("max_channels", "max_duration_s", "max_sessions"):
            value = values[name]
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValueError(name)
        if values["client_ref"] is not None and not isinstance(values["client_ref"], str):
            raise ValueError("client_ref")
        return cls(
            presets=tuple(presets) if presets is not None else None,
            max_channels=values["max_channels"],
            max_duration_s=values["max_duration_s"],
            max_sessions=values["max_sessions"],
            client_ref=values["client_ref"],
        )


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


def read_bindings(
    body: Mapping[str, object], rules: BindingRules
) -> tuple[Bindings, tuple[FieldProblem, ...]]:
    """The bindings a mint request asks for, and a problem for each field that is wrong."""
    problems: list[FieldProblem] = []

    def refuse(name: str, message: str) -> None:
        problems.append(FieldProblem(name, message))

    presets = _presets(body, rules, refuse)
    max_channels = _count(body, "max_channels", rules.max_channels, refuse)
    max_duration_s = _count(body, "max_duration_s", rules.max_duration_s, refuse)
    max_sessions = _count(body, "max_sessions", MAX_SESSIONS_BOUND, refuse)
    single_use = body.get("single_use")
    if single_use is not None and not isinstance(single_use, bool):
        refuse("single_use", "must be true or false")
    elif single_use:
        if max_sessions not in (None, 1):
            refuse("single_use", "means max_sessions 1; send one of the two, or agree")
        max_sessions = 1
    client_ref = _client_ref(body.get("client_ref"), refuse)
    bindings = Bindings(presets, max_channels, max_duration_s, max_sessions, client_ref)
    return bindings, tuple(problems)


def _presets(
    body: Mapping[str, object], rules: BindingRules, refuse: _Refuse
) -> tuple[str, ...] | None:
    if "preset" in body and "presets" in body:
        refuse("presets", "cannot be sent with preset: send one of the two")
        return None
    one, many = body.get("preset"), body.get("presets")
    if one is not None:
        name, listed = "preset", [one]
    elif many is not None:
        if not isinstance(many, list) or not 1 <= len(many) <= MAX_PRESETS:
            refuse("presets", f"must be a list of 1 to {MAX_PRESETS} preset names")
            return None
        name, listed = "presets", many
    else:
        return None
    names = [item for item in listed if isinstance(item, str) and _PRESET_NAME.fullmatch(item)]
    if len(names) != len(listed):
        refuse(name, "must name presets (letters, digits, - and _; at most 64 characters)")
        return None
    unknown = sorted(set(names) - rules.presets) if rules.presets is not None else []
    if unknown:
        known = ", ".join(sorted(rules.presets or ())) or "none are configured"
        refuse(name, f"must name presets of this broker ({known}), not {', '.join(unknown)}")
        return None
    return tuple(dict.fromkeys(names))  # in the order given, each once


def _count(body: Mapping[str, object], name: str, maximum: int, refuse: _Refuse) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)  # JSON has one number type: 2.0 is 2
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        refuse(name, f"must be a whole number from 1 to {maximum}")
        return None
    return value


def _client_ref(value: object, refuse: _Refuse) -> str | None:
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= MAX_CLIENT_REF_LENGTH
        or any(unicodedata.category(char) in ("Cc", "Cs") for char in value)
    ):
        refuse(
            "client_ref",
            f"must be 1 to {MAX_CLIENT_REF_LENGTH} characters, without control characters",
        )
        return None
    return value


# --- token ids ---------------------------------------------------------------------------

TOKEN_ID_SALT = b"broker.token-id.v1"
SUBJECT_KEY_LENGTH = 32  # hex characters of `Subject.key`
_NONCE_LENGTH = 16
_MAC_LENGTH = 16
TOKEN_ID_LENGTH = SUBJECT_KEY_LENGTH + _NONCE_LENGTH + _MAC_LENGTH
TOKEN_ID_PATTERN = rf"^[0-9a-f]{{{TOKEN_ID_LENGTH}}}$"
_TOKEN_ID = re.compile(TOKEN_ID_PATTERN)


class TokenIds:
    """Token ids: `<subject key><random><MAC of both>`, all lowercase hex.

    The MAC uses the token signing keys (the first makes it, any listed one checks it), so an
    id whose key was retired is as unknown as its token is invalid.
    """

    def __init__(self, secret_keys: Collection[Secret]) -> None:
        self._keys = [str(key).encode() for key in secret_keys if str(key)]

    def new(self, subject_key: str) -> str:
        """A fresh id for a token of the subject whose `Subject.key` is `subject_key`."""
        prefix = subject_key + secrets.token_hex(_NONCE_LENGTH // 2)
        return prefix + self._mac(self._keys[0], prefix)

    def subject_key(self, token_id: object) -> str | None:
        """The subject handle of an id this broker issued, or None for any other text."""
        if not isinstance(token_id, str) or not _TOKEN_ID.fullmatch(token_id):
            return None
        prefix, mac = token_id[:-_MAC_LENGTH], token_id[-_MAC_LENGTH:]
        # Every key is compared, so timing says nothing about which one matched.
        matches = [hmac.compare_digest(mac, self._mac(key, prefix)) for key in self._keys]
        return token_id[:SUBJECT_KEY_LENGTH] if any(matches) else None

    @staticmethod
    def _mac(key: bytes, prefix: str) -> str:
        digest = hmac.new(key, TOKEN_ID_SALT + b":" + prefix.encode(), hashlib.sha256)
        return digest.hexdigest()[:_MAC_LENGTH]
