"""`/v1/sessions`: an end user's live sessions, created, found again, read and deleted."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker.creation import create_session_record
from broker.errors import NotFound, UpstreamNotFound
from broker.http import bounded_int, json_response, read_json
from broker.idempotency import IDEMPOTENCY_HEADER
from broker.identity import Subject
from broker.results import public_result
from broker.services import Services, services
from broker.store import SessionRecord

__all__ = ["create_session_record", "fetch_result", "owned_record", "routes", "session_view"]

MAX_PAGE = 100
# Once recording has ended (end_recording, end_session) reconnecting is pointless.
URL_STATUSES = frozenset({"created", "recording"})


def session_view(record: SessionRecord) -> dict[str, Any]:
    """What the owner sees of a session; the URL only while it can still be used."""
    view: dict[str, Any] = {
        "id": record.id,
        "status": record.status,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "messages_config": record.messages_config,
    }
    if record.status in URL_STATUSES:
        view["url"] = record.url
    return view


async def owned_record(found: Services, subject: Subject, session_id: str) -> SessionRecord:
    """The subject's session; anyone else's is indistinguishable from a missing one."""
    record = await found.store.load(subject.key, session_id)
    if record is None:
        raise NotFound("No such session")
    return record


async def fetch_result(found: Services, record: SessionRecord) -> dict[str, Any]:
    """Gladia's result for the session, sanitised, cached once it is final."""
    cached = await found.store.load_result(record)
    if cached is not None:
        return cached
    try:
        upstream = await found.gladia.get_live_session(record.id)
    except UpstreamNotFound:
        raise NotFound("No such session") from None
    result = public_result(upstream)
    if result.get("status") in ("done", "error"):
        await found.store.save_final_result(record, result)
        # Over at Gladia: the session no longer counts against any live limit.
        await found.limits.release_lease(record.owner, record.id)
    return result


async def create_session(request: Request) -> Response:
    found = services(request)
    subject = await found.authenticator.authenticate_request(request)
    body = await read_json(request, found.settings.max_body_bytes, required=False)
    idempotency_key = request.headers.get(IDEMPOTENCY_HEADER)
    record = await create_session_record(found, subject, body, idempotency_key=idempotency_key)
    view = session_view(record)
    view.pop("status")
    return json_response(view, 201, no_store=True)


async def get_session(request: Request) -> Response:
    found = services(request)
    subject = await found.authenticator.authenticate_request(request)
    record = await owned_record(found, subject, request.path_params["session_id"])
    return json_response(session_view(record), no_store=True)


async def get_result(request: Request) -> Response:
    found = services(request)
    subject = await found.authenticator.authenticate_request(request)
    record = await owned_record(found, subject, request.path_params["session_id"])
    return json_response(await fetch_result(found, record), no_store=True)


async def delete_session(request: Request) -> Response:
    found = services(request)
    subject = await found.authenticator.authenticate_request(request)
    record = await owned_record(found, subject, request.path_params["session_id"])
    await found.gladia.delete_live_session(record.id)
    await found.store.delete(record)
    await found.events.forget(record.owner, record.id, record.request_id)
    await found.limits.release_lease(record.owner, record.id)
    return Response(status_code=204)


async def list_sessions(request: Request) -> Response:
    found = services(request)
    subject = await found.authenticator.authenticate_request(request)
    limit = bounded_int(request.query_params.get("limit"), "limit", 1, MAX_PAGE, default=20)
    page = await found.store.list_page(subject.key, limit, request.query_params.get("cursor"))
    items = []
    for record in page.records:
        item = session_view(record)
        item.pop("url", None)
        items.append(item)
    return json_response({"items": items, "next_cursor": page.next_cursor}, no_store=True)


routes = [
    Route("/v1/sessions", create_session, methods=["POST"]),
    Route("/v1/sessions", list_sessions, methods=["GET"]),
    Route("/v1/sessions/{session_id}", get_session, methods=["GET"]),
    Route("/v1/sessions/{session_id}", delete_session, methods=["DELETE"]),
    Route("/v1/sessions/{session_id}/result", get_result, methods=["GET"]),
]
