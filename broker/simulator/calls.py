"""The log of REST calls the simulator received, for tests to inspect."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One REST call as received; headers and JSON body are decoded when read, not when recorded."""

    method: str
    path: str
    query: str
    raw_headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    received_at: str

    @property
    def headers(self) -> dict[str, str]:
        """Headers by lower-case name (repeated ones joined with ", ")."""
        headers: dict[str, str] = {}
        for raw_name, raw_value in self.raw_headers:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return headers

    @property
    def json(self) -> Any:
        """The parsed JSON body, or None when the body is empty or not JSON."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def to_json(self) -> dict[str, Any]:
        """Return the call as JSON."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "json": self.json,
            "received_at": self.received_at,
        }


class CallLog:
    """The most recent calls, oldest first, bounded so long runs keep bounded memory."""

    def __init__(self, limit: int) -> None:
        self._calls: deque[RecordedCall] = deque(maxlen=limit)
        self._lock = threading.Lock()

    def append(self, call: RecordedCall) -> None:
        """Record a call."""
        with self._lock:
            self._calls.append(call)

    def snapshot(self) -> list[RecordedCall]:
        """The recorded calls, oldest first."""
        with self._lock:
            return list(self._calls)

    def clear(self) -> None:
        """Forget every call."""
        with self._lock:
            self._calls.clear()
