"""The log of REST calls the simulator received, for tests to inspect."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RecordedCall:
    """One REST call as received: method, path, query, headers and JSON body (None if not JSON)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    json: Any
    received_at: str

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
