"""Injected failures for the next N REST calls that match a method and a path pattern."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, fields
from fnmatch import fnmatchcase
from typing import Any, Literal, get_args

FaultKind = Literal["delay", "timeout", "status", "drop", "timeout_after_create"]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)


@dataclass(frozen=True)
class Fault:
    """What to do to matching calls: ``kind`` with its knobs, for the next ``count`` of them.

    ``method`` is an HTTP method or ``*``; ``path`` is an exact path or a glob (``/v2/live/*``).
    """

    kind: FaultKind
    method: str = "*"
    path: str = "*"
    count: int = 1
    # delay: how long to wait before answering normally.
    delay_s: float = 1.0
    # status: the answer, with Gladia's envelope and an optional Retry-After (seconds).
    status: int = 500
    retry_after: int | None = None
    message: str | None = None
    # timeout / timeout_after_create: how long to hold the request; None uses the config's value.
    timeout_s: float | None = None

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault applies to a call."""
        return (self.method == "*" or self.method.upper() == method) and fnmatchcase(
            path, self.path
        )

    def to_json(self) -> dict[str, Any]:
        """Return the fault as JSON."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Fault:
        """Read a fault spec, raising ValueError with a reason when it is malformed."""
        if not isinstance(data, dict):
            raise ValueError("a fault must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(unknown)}")
        if data.get("kind") not in FAULT_KINDS:
            raise ValueError(f"kind must be one of: {', '.join(FAULT_KINDS)}")
        fault = cls(**data)
        fault.check()
        return fault

    def check(self) -> None:
        """Raise ValueError when the knobs make no sense."""
        if not isinstance(self.count, int) or self.count < 1:
            raise ValueError("count must be a positive integer")
        if self.kind == "status" and not (
            isinstance(self.status, int) and 400 <= self.status <= 599
        ):
            raise ValueError("status must be a 4xx or 5xx code")
        for name in ("delay_s", "timeout_s"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int | float) or value < 0):
                raise ValueError(f"{name} must be a non-negative number")


class FaultRegistry:
    """Pending faults, consumed in the order they were injected (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[tuple[Fault, int]] = []

    def add(self, fault: Fault) -> None:
        """Arm a fault for its next ``count`` matching calls."""
        fault.check()
        with self._lock:
            self._pending.append((fault, fault.count))

    def take(self, method: str, path: str) -> Fault | None:
        """Consume one use of the first armed fault matching this call."""
        if not self._pending:
            return None
        with self._lock:
            for index, (fault, remaining) in enumerate(self._pending):
                if fault.matches(method, path):
                    if remaining > 1:
                        self._pending[index] = (fault, remaining - 1)
                    else:
                        del self._pending[index]
                    return fault
        return None

    def pending(self) -> list[tuple[Fault, int]]:
        """Armed faults with their remaining uses."""
        with self._lock:
            return list(self._pending)

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._pending.clear()
