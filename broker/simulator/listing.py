"""GET /v2/live: the filters of the query string, and pagination links back at the simulator."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from broker.simulator.errors import GladiaError
from broker.simulator.sessions import LiveSession
from broker.simulator.timestamps import parse_iso

STATUSES = ("queued", "processing", "done", "error")
DEFAULT_LIMIT = 20


@dataclass(frozen=True)
class ListQuery:
    """The filters and page of one list request."""

    offset: int
    limit: int
    statuses: frozenset[str]
    day: date | None
    before: datetime | None
    after: datetime | None
    metadata: dict[str, Any]

    def matches(self, session: LiveSession) -> bool:
        """Whether a session passes every filter."""
        created = session.created_at
        if self.statuses and session.status not in self.statuses:
            return False
        if self.day is not None and created.date() != self.day:
            return False
        if self.before is not None and created >= self.before:
            return False
        if self.after is not None and created <= self.after:
            return False
        return all(
            _metadata_matches(session.custom_metadata, k, v) for k, v in self.metadata.items()
        )


def parse_list_query(params: QueryParams) -> ListQuery:
    """Read the list filters, or raise a 400 naming each bad one."""
    errors: list[str] = []
    offset = _integer(params.get("offset"), "offset", 0, 0, errors)
    limit = _integer(params.get("limit"), "limit", DEFAULT_LIMIT, 1, errors)
    statuses = {s for value in params.getlist("status") for s in value.split(",") if s}
    if statuses - set(STATUSES):
        errors.append(f"status must be one of the following values: {', '.join(STATUSES)}")
    day = None
    if params.get("date"):
        try:
            day = date.fromisoformat(params["date"])
        except ValueError:
            errors.append("date must be a valid ISO 8601 date (YYYY-MM-DD)")
    before = _moment(params.get("before_date"), "before_date", errors)
    after = _moment(params.get("after_date"), "after_date", errors)
    metadata = _metadata_filter(params, errors)
    if errors:
        raise GladiaError(400, validation_errors=errors)
    return ListQuery(offset, limit, frozenset(statuses), day, before, after, metadata)


def page_links(
    base_url: str, params: QueryParams, query: ListQuery, total: int
) -> dict[str, str | None]:
    """Absolute first/current/next URLs that keep the filters."""
    kept = [(k, v) for k, v in params.multi_items() if k not in ("offset", "limit")]

    def link(offset: int) -> str:
        return f"{base_url}?{urlencode([*kept, ('offset', offset), ('limit', query.limit)])}"

    following = query.offset + query.limit
    return {
        "first": link(0),
        "current": link(query.offset),
        "next": link(following) if following < total else None,
    }


def _integer(raw: str | None, name: str, default: int, low: int, errors: list[str]) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        errors.append(f"{name} must be an integer number")
        return default
    if value < low:
        errors.append(f"{name} must not be less than {low}")
        return default
    return value


def _moment(raw: str | None, name: str, errors: list[str]) -> datetime | None:
    if not raw:
        return None
    moment = parse_iso(raw)
    if moment is None:
        errors.append(f"{name} must be a valid ISO 8601 date string")
    return moment


def _metadata_filter(params: QueryParams, errors: list[str]) -> dict[str, Any]:
    """Read ``custom_metadata={"k":"v"}`` (the docs) and ``custom_metadata[k]=v`` (the SDKs)."""
    wanted: dict[str, Any] = {}
    for key, value in params.multi_items():
        if key == "custom_metadata":
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                errors.append("custom_metadata must be a JSON object")
                continue
            wanted.update(parsed)
        elif key.startswith("custom_metadata[") and key.endswith("]"):
            wanted[key[len("custom_metadata[") : -1]] = value
    return wanted


def _metadata_matches(metadata: Any, key: str, wanted: Any) -> bool:
    if not isinstance(metadata, dict) or key not in metadata:
        return False
    actual = metadata[key]
    if actual == wanted and type(actual) is type(wanted):
        return True
    # A query string carries text only: "42", "true" and "True" all match their typed values.
    return isinstance(wanted, str) and wanted in _spellings(actual)


def _spellings(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    spellings = {json.dumps(value, separators=(",", ":"), ensure_ascii=False), str(value)}
    return spellings
