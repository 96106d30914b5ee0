"""ISO 8601 timestamps shaped like Gladia's (milliseconds, ``Z``)."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Return the current UTC time."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """Format a UTC datetime like ``2023-12-28T09:04:17.210Z``."""
    return moment.isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


def iso_now() -> str:
    """Return the current UTC time formatted like Gladia's timestamps."""
    return iso(utc_now())


def parse_iso(text: str) -> datetime | None:
    """Parse an ISO date or date-time (``Z`` allowed); naive values are taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
