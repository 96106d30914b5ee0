"""`/v2/live`: Gladia's own REST surface, so the official SDKs can use the broker as `apiUrl`.

Same identity, policy and Redis records as `/v1/sessions`; Gladia's status codes and error
envelope (rendered by the app's exception handlers for every path under `/v2/`). Clients that
can only send `X-Gladia-Key` (Pipecat's `GladiaSTTService`) send a user token in it instead.
"""

from __future__ import annotations

import asyncio
import logging
import re
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import urlencode

from starlette.background import BackgroundTask
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from broker.errors import (
    BadRequest,
    FieldProblem,
    InvalidFields,
    NotFound,
    Unauthorized,
    UpstreamTimeout,
)
from broker.identity.credentials import Subject, bearer_credential, peer_address
from broker.policy.idempotency import idempotency_key_of
from broker.settings import GLADIA_REGIONS
from broker.store.session_record import SessionRecord
from broker.web.http import bounded_int, json_response, read_json
from broker.web.resources import Resources, resources

logger = logging.getLogger("broker.facade")

# The Python SDK cannot send a request without `x-gladia-key` (it requires a non-empty
# `api_key`), so this one placeholder stands for "no credential here".
KEY_PLACEHOLDER = "unused"
GLADIA_KEY_HEADER = "x-gladia-key"
# Gladia's API keys are UUIDs; a broker token (itsdangerous) or a JWT never is.
_GLADIA_KEY_SHAPE = re.compile(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}", re.IGNORECASE)
DEFAULT_PAGE = 20
MAX_PAGE = 100
# Far past any user's index (BROKER_SESSIONS_INDEX_MAX); larger numbers are not offsets at all.
MAX_OFFSET = 1_000_000
LIST_PARAMS = frozenset({"offset", "limit"})
# Upstream reads in flight for one list page, so a page never takes the whole Gladia pool.
LIST_FETCH_CONCURRENCY = 8
FILE_HEADERS = ("content-type", "content-length", "content-disposition")


def credential_headers(headers: Headers) -> Headers:
    """The headers to authenticate: a user token in `X-Gladia-Key` becomes the bearer credential.

    Never a Gladia key: one is refused (401), and the header is never forwarded nor logged.
    """
    # Every copy of the header: one placeholder must not carry a real key past this check.
    offered = [value.strip() for value in headers.getlist(GLADIA_KEY_HEADER)]
    if any(_GLADIA_KEY_SHAPE.fullmatch(value) for value in offered):
        # The value is never logged: it may be a real key.
        logger.warning("refused a Gladia API key sent in x-gladia-key")
        raise Unauthorized(
            "This broker expects a broker user token, not a Gladia API key: the Gladia key "
            "stays on the broker. Send the user token in 'Authorization: Bearer <token>' or in "
            f"X-Gladia-Key; beside Authorization, X-Gladia-Key may be {KEY_PLACEHOLDER!r}.",
            reason="gladia_key_sent",
        )
    if all(value == KEY_PLACEHOLDER for value in offered):
        return headers
    if len(offered) > 1:
        # Deciding by one copy would let another credential reach whatever reads the other.
        raise Unauthorized(f"Send one X-Gladia-Key header, not {len(offered)}")
    [token] = offered
    if headers.getlist("authorization"):
        if bearer_credential(headers) != token:
            raise Unauthorized("X-Gladia-Key and Authorization carry different credentials")
        return headers
    raw = [(name, value) for name, value in headers.raw if name != GLADIA_KEY_HEADER.encode()]
    return Headers(raw=[*raw, (b"authorization", b"Bearer " + token.encode("latin-1"))])


async def authenticate(request: Request) -> tuple[Resources, Subject]:
    found = resources(request)
    headers = credential_headers(request.headers)
    return found, await found.authenticator.authenticate(headers, peer_address(request.scope))


def query_region(request: Request) -> str | None:
    region = request.query_params.get("region")
    if region is not None and region not in GLADIA_REGIONS:
        problem = FieldProblem("region", f"must be one of {', '.join(GLADIA_REGIONS)}")
        raise InvalidFields("Invalid query parameter", problems=(problem,))
    return region


async def create_live_session(request: Request) -> Response:
    found, subject = await authenticate(request)
    region = query_region(request)
    body = await read_json(request, found.settings.max_body_bytes, required=False)
    idempotency_key = idempotency_key_of(request.headers)
    record = await found.creator.create(subject, body, region, idempotency_key)
    created = {"id": record.id, "created_at": record.created_at, "url": record.url}
    return json_response(created, 201, no_store=True)


async def get_live_session(request: Request) -> Response:
    found, subject = await authenticate(request)
    record = await found.sessions.readable(subject, request.path_params["session_id"])
    return json_response(await found.sessions.result(record), no_store=True)


async def list_live_sessions(request: Request) -> Response:
    found, subject = await authenticate(request)
    offset, limit = page_window(request)
    page = await found.sessions.window(subject, offset, limit)
    items = await results_of(found, page.records)
    links = page_links(list_url(found), offset, limit, page.next_cursor is not None)
    return json_response({**links, "items": items}, no_store=True)


async def delete_live_session(request: Request) -> Response:
    found, subject = await authenticate(request)
    record = await found.sessions.owned(subject, request.path_params["session_id"])
    await found.sessions.delete(record)
    return Response(status_code=202)


async def get_live_session_file(request: Request) -> Response:
    """The recorded audio, passed through chunk by chunk as Gladia sends it."""
    found, subject = await authenticate(request)
    record = await found.sessions.readable(subject, request.path_params["session_id"])
    stack = AsyncExitStack()
    # Entered here, so a Gladia 404 is answered 404 before any byte of a 200 is sent.
    upstream = await stack.enter_async_context(found.sessions.audio(record))

    async def relay() -> Any:
        async with stack:
            async for chunk in upstream.aiter_bytes():
                yield chunk

    headers = {name: upstream.headers[name] for name in FILE_HEADERS if name in upstream.headers}
    headers["Cache-Control"] = "no-store"
    # The background task closes the upstream stream even when the client left before reading.
    return StreamingResponse(relay(), headers=headers, background=BackgroundTask(stack.aclose))


def page_window(request: Request) -> tuple[int, int]:
    params = request.query_params
    problems = [
        FieldProblem(name, "is not supported by the broker: only offset and limit are")
        for name in sorted(set(params) - LIST_PARAMS)
    ]
    window = []
    for name, low, high, default in (
        ("offset", 0, MAX_OFFSET, 0),
        ("limit", 1, MAX_PAGE, DEFAULT_PAGE),
    ):
        try:
            window.append(bounded_int(params.get(name), name, low, high, default))
        except BadRequest:
            problems.append(FieldProblem(name, f"must be an integer from {low} to {high}"))
    if problems:
        raise InvalidFields("Invalid query parameters", problems=tuple(problems))
    offset, limit = window
    return offset, limit


async def results_of(found: Resources, records: list[SessionRecord]) -> list[dict[str, Any]]:
    """Gladia's view of each session, in order; one Gladia no longer knows is left out."""
    gate = asyncio.Semaphore(LIST_FETCH_CONCURRENCY)

    async def one(record: SessionRecord) -> dict[str, Any] | None:
        async with gate:
            try:
                return await found.sessions.result(record)
            except NotFound:
                return None

    # One page is one answer to the client: bounded like a single call to Gladia.
    try:
        async with asyncio.timeout(found.settings.gladia_total_timeout_s):
            fetched = await asyncio.gather(*(one(record) for record in records))
    except TimeoutError:
        raise UpstreamTimeout("Gladia did not answer in time") from None
    return [item for item in fetched if item is not None]


def list_url(found: Resources) -> str:
    """The collection's URL for Gladia's pagination links: never built from the Host header."""
    # Without BROKER_PUBLIC_URL the links are relative; the SDKs read only their query.
    return f"{found.settings.public_url or ''}/v2/live"


def page_links(base: str, offset: int, limit: int, more: bool) -> dict[str, str | None]:
    def at(position: int) -> str:
        return f"{base}?{urlencode({'offset': position, 'limit': limit})}"

    return {"first": at(0), "current": at(offset), "next": at(offset + limit) if more else None}


routes = [
    Route("/v2/live", create_live_session, methods=["POST"]),
    Route("/v2/live", list_live_sessions, methods=["GET"]),
    Route("/v2/live/{session_id}", get_live_session, methods=["GET"]),
    Route("/v2/live/{session_id}", delete_live_session, methods=["DELETE"]),
    Route("/v2/live/{session_id}/file", get_live_session_file, methods=["GET"]),
]
