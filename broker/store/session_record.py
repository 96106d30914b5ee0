"""What the broker remembers of one session, and the text Redis keeps it as.

A record is one string (`GET`/`SET`): its fields one per line, in `_LINES` order, with the two
times as epoch milliseconds and `messages_config` as one character per known flag. That is 150
bytes for a session just created, against 278 as JSON: with the key and Redis's own overhead
(`MEMORY USAGE`), 296 bytes instead of 456, and 328 once its end event is noted
(docs/performance.md). Lua edits it in place (`RECORD_TEXT`): the status is the first line and
the end event's stream id the last.

A record that cannot be written that way (a newline in a field, a flag the broker does not
know, a time that would not read back the same) is stored as JSON, which is also how records
were stored before; both read back alike, in Python and in Lua.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from broker.store.scripts import LuaFunction

FINAL_STATUSES = frozenset({"done", "error"})

# Gladia's `messages_config` flags in the order the stored form writes them: stored data, so
# new flags go at the end and none is ever removed or moved. The policy's own list
# (`broker.policy.init_body.MESSAGE_FLAGS`) may change; a test keeps it within this one.
STORED_MESSAGE_FLAGS = (
    "receive_partial_transcripts",
    "receive_final_transcripts",
    "receive_speech_events",
    "receive_pre_processing_events",
    "receive_realtime_processing_events",
    "receive_post_processing_events",
    "receive_acknowledgments",
    "receive_errors",
    "receive_lifecycle_events",
)
_FLAG_CHARS = {True: "1", False: "0"}
_CHAR_FLAGS = {char: flag for flag, char in _FLAG_CHARS.items()}
_UNSET = "-"

# The lines of the stored form; the status first and the end event last, for `RECORD_TEXT`.
_LINES = (
    "status",
    "request_id",
    "url",
    "created_at",
    "expires_at",
    "messages_config",
    "client_ref",
    "subject",
    "ended_event",
)

# A stored record read and edited in Lua, in either form: `record_field` reads the status or
# the request id, `record_with` sets the status or the end event's stream id. Scripts that use
# them name RECORD_TEXT in their `calls`.
RECORD_TEXT = LuaFunction(
    "record_field",
    """
local function record_field(stored, name)
  if string.sub(stored, 1, 1) == '{' then return cjson.decode(stored)[name] end
  local status, request_id = string.match(stored, '^([^\\n]*)\\n([^\\n]*)')
  if name == 'status' then return status end
  return request_id
end
local function record_with(stored, name, value)
  if string.sub(stored, 1, 1) == '{' then
    local record = cjson.decode(stored)
    record[name] = value
    return cjson.encode(record)
  end
  if name == 'status' then
    return value .. string.sub(stored, (string.find(stored, '\\n', 1, true)))
  end
  return string.match(stored, '^(.*)\\n') .. '\\n' .. value
end
""",
    keys=0,
    args=0,
)


@dataclass(frozen=True)
class SessionRecord:
    """What the broker remembers of one Gladia live session."""

    id: str
    owner: str
    url: str
    created_at: str
    expires_at: str
    status: str
    messages_config: dict[str, bool]
    request_id: str
    # The app's own reference, from the token that created the session (usage, relayed events).
    client_ref: str | None = None
    # The user's id, kept only when the relay names it in what it sends.
    subject: str | None = None
    # The stream id of the session's `live.end_session`, once stored (set in Lua).
    ended_event: str | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def has_expired(self, now: datetime | None = None) -> bool:
        """Whether `expires_at` has passed: its URL is no longer handed out, its leases freed."""
        try:
            expires_at = datetime.fromisoformat(self.expires_at)
        except ValueError:
            return False
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        return (now or datetime.now(UTC)) >= expires_at

    def stored(self) -> str:
        """The text Redis keeps; the id and the owner are the key, so they are not in it."""
        lines = self._lines()
        return "\n".join(lines) if lines is not None else self.to_json()

    def _lines(self) -> list[str] | None:
        created_at, expires_at = _stored_time(self.created_at), _stored_time(self.expires_at)
        flags = _stored_flags(self.messages_config)
        if created_at is None or expires_at is None or flags is None:
            return None
        lines = [
            self.status,
            self.request_id,
            self.url,
            created_at,
            expires_at,
            flags,
            self.client_ref or "",
            self.subject or "",
            self.ended_event or "",
        ]
        # A field that is empty here reads back as None: only a None may be written as one.
        texts = (self.status, self.request_id, self.url, self.client_ref, self.subject)
        if any(text == "" for text in texts) or self.status.startswith("{"):
            return None
        if any("\n" in line for line in lines):
            return None
        return lines

    def to_json(self) -> str:
        """The JSON form: for records the lines cannot hold."""
        stored: dict[str, object] = {
            "status": self.status,
            "url": self.url,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "messages_config": self.messages_config,
            "request_id": self.request_id,
        }
        for name, value in (
            ("client_ref", self.client_ref),
            ("subject", self.subject),
            ("ended_event", self.ended_event),
        ):
            if value is not None:
                stored[name] = value
        return json.dumps(stored, separators=(",", ":"))

    @classmethod
    def from_stored(cls, owner: str, session_id: str, stored: str) -> SessionRecord | None:
        """The record `stored()` wrote, in either form; None when it is not one."""
        if stored.startswith("{"):
            return cls._from_json(owner, session_id, stored)
        lines = stored.split("\n")
        if len(lines) != len(_LINES):
            return None
        status, request_id, url, created_at, expires_at, flags, ref, subject, ended = lines
        messages_config = _read_flags(flags)
        created, expires = _read_time(created_at), _read_time(expires_at)
        if messages_config is None or created is None or expires is None:
            return None
        return cls(
            id=session_id,
            owner=owner,
            url=url,
            created_at=created,
            expires_at=expires,
            status=status,
            messages_config=messages_config,
            request_id=request_id,
            client_ref=ref or None,
            subject=subject or None,
            ended_event=ended or None,
        )

    @classmethod
    def _from_json(cls, owner: str, session_id: str, stored: str) -> SessionRecord | None:
        try:
            fields = json.loads(stored)
            return cls(
                id=session_id,
                owner=owner,
                url=fields["url"],
                created_at=fields["created_at"],
                expires_at=fields["expires_at"],
                status=fields["status"],
                messages_config=fields["messages_config"],
                request_id=fields["request_id"],
                client_ref=_optional_text(fields.get("client_ref")),
                subject=_optional_text(fields.get("subject")),
                ended_event=_optional_text(fields.get("ended_event")),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


def _optional_text(value: object) -> str | None:
    return value if isinstance(value, str) else None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _stored_time(text: str) -> str | None:
    """A time as epoch milliseconds when it reads back as the same text, else None."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    stored = str((moment - _EPOCH) // timedelta(milliseconds=1))
    return stored if _read_time(stored) == text else None


def _read_time(stored: str) -> str | None:
    """Epoch milliseconds as the broker and Gladia write a time (UTC, milliseconds, `Z`),
    through `time.strftime`: half what datetime's costs, and every lookup reads two.
    `_stored_time` checks that a time reads back the same."""
    if not (stored.isascii() and stored.isdigit()):
        return None
    milliseconds = int(stored)
    second = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(milliseconds // 1000))
    return f"{second}.{milliseconds % 1000:03d}Z"


def _stored_flags(config: dict[str, Any]) -> str | None:
    if not config.keys() <= set(STORED_MESSAGE_FLAGS):
        return None
    chars = []
    for flag in STORED_MESSAGE_FLAGS:
        value = config.get(flag)
        if value is None:
            chars.append(_UNSET)
        elif isinstance(value, bool):
            chars.append(_FLAG_CHARS[value])
        else:
            return None
    return "".join(chars).rstrip(_UNSET)


def _read_flags(stored: str) -> dict[str, bool] | None:
    if len(stored) > len(STORED_MESSAGE_FLAGS):
        return None
    config = {}
    for flag, char in zip(STORED_MESSAGE_FLAGS, stored, strict=False):
        if char in _CHAR_FLAGS:
            config[flag] = _CHAR_FLAGS[char]
        elif char != _UNSET:
            return None
    return config
