"""`GET /v1/sessions/{id}/events`: a session's event history for its owner, as JSON or SSE."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from broker.errors import BadRequest
from broker.events.intake import END_EVENT
from broker.store.session_record import SessionRecord
from broker.web.http import NO_STORE, bounded_int, json_response
from broker.web.resources import Resources, resources
from broker.web.streams import StreamSlots

MAX_PAGE = 1000
_STREAM_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")


class _HoldingSlot(Response):
    """An SSE response that gives its slot back however it ends, even if it never started."""

    def __init__(self, response: EventSourceResponse, slots: StreamSlots) -> None:
        self._response = response
        self._slots = slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._response(scope, receive, send)
        finally:
            self._slots.give_back()


def _cursor(value: str | None, name: str) -> str:
    if value is None or value == "":
        return "0-0"
    # Redis stream ids are two unsigned 64-bit numbers; a larger one is not an id at all.
    if not _STREAM_ID.match(value) or any(int(part) >= 2**64 for part in value.split("-")):
        raise BadRequest(f"{name} is not an event id this API returned")
    return value


async def session_events(request: Request) -> Response:
    found = resources(request)
    subject = await found.authenticator.authenticate_request(request)
    record = await found.sessions.readable(subject, request.path_params["session_id"])
    if "text/event-stream" in request.headers.get("accept", ""):
        if request.headers.get("last-event-id"):
            cursor = _cursor(request.headers["last-event-id"], "Last-Event-ID")
        else:
            cursor = _cursor(request.query_params.get("after"), "after")
        return _follow(found, record, cursor)
    after = _cursor(request.query_params.get("after"), "after")
    limit = bounded_int(request.query_params.get("limit"), "limit", 1, MAX_PAGE, default=100)
    entries = await found.events.read(record.owner, record.id, after, limit)
    ended = await found.events.end_event_id(record.owner, record.id) is not None
    body = {
        "items": [entry.to_json() for entry in entries],
        "next_cursor": entries[-1].id if entries else after,
        "ended": ended,
    }
    return json_response(body, no_store=True)


def _follow(found: Resources, record: SessionRecord, cursor: str) -> Response:
    """Server-sent events from `cursor` on, until `live.end_session` (or the session is gone)."""
    settings = found.settings

    async def events() -> AsyncIterator[ServerSentEvent]:
        after = cursor
        while True:
            entries = await found.events.wait(
                record.owner, record.id, after, 100, settings.events_block_ms
            )
            for entry in entries:
                after = entry.id
                yield ServerSentEvent(data=json.dumps(entry.to_json()), id=entry.id)
                if entry.event == END_EVENT:
                    return
            if not entries:
                # Quiet: the stream is over if the session ended before `after`, or is gone.
                if await found.store.load(record.owner, record.id) is None:
                    return
                if await found.events.end_event_id(record.owner, record.id) is not None:
                    return

    response = EventSourceResponse(
        events(),
        headers=NO_STORE,
        ping=settings.sse_heartbeat_s,
        send_timeout=settings.sse_heartbeat_s * 2,
    )
    found.event_streams.take(settings.retry_after_s)
    return _HoldingSlot(response, found.event_streams)


routes = [
    Route("/v1/sessions/{session_id}/events", session_events, methods=["GET"]),
]
