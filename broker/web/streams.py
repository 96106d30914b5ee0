"""The event streams (SSE) one instance holds open at once."""

from __future__ import annotations

from broker.errors import ServiceUnavailable


class StreamSlots:
    """Caps the event streams one instance holds open (each keeps a Redis connection busy)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self.open = 0

    def take(self, retry_after_s: int) -> None:
        if self.open >= self._limit:
            raise ServiceUnavailable("Too many event streams are open", retry_after_s=retry_after_s)
        self.open += 1

    def give_back(self) -> None:
        self.open -= 1
