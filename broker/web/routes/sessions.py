"""`/v1/sessions`: an end user's live sessions, created, found again, read and deleted."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker.identity.credentials import peer_address
from broker.identity.revocation import PendingRevocation
from broker.policy.idempotency import idempotency_key_of
from broker.store.session_record import SessionRecord
from broker.web.http import bounded_int, json_response, read_json
from broker.web.resources import Resources, resources

MAX_PAGE = 100
# Once recording has ended (end_recording, end_session) reconnecting is pointless.
URL_STATUSES = frozenset({"created", "recording"})


def session_view(record: SessionRecord) -> dict[str, Any]:
    """What the owner sees of a session; the URL only while it can still be used (recording
    has not ended, and `expires_at`, which a token's `max_duration_s` may bring forward, has
    not passed)."""
    view: dict[str, Any] = {
        "id": record.id,
        "status": record.status,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "messages_config": record.messages_config,
    }
    if record.client_ref is not None:
        view["client_ref"] = record.client_ref
    if record.status in URL_STATUSES and not record.has_expired():
        view["url"] = record.url
    return view


async def create_session(request: Request) -> Response:
    found = resources(request)
    # Revocation is checked in the admission script (`SessionCreator.create`), on its own only
    # before another refusal.
    subject = await found.authenticator.authenticate_request(request, check_revocation=False)
    revocation = PendingRevocation(found.revocations, subject)
    async with revocation.first():
        body = await read_json(request, found.settings.max_body_bytes, required=False)
        record = await found.creator.create(
            subject,
            body,
            idempotency_key=idempotency_key_of(request.headers),
            revocation=revocation,
        )
    view = session_view(record)
    view.pop("status")
    return json_response(view, 201, no_store=True)


async def reconnect_view(
    found: Resources, headers: Headers, peer: str | None, session_id: str
) -> dict[str, Any]:
    """The reconnect lookup: the owner's view of the session, in one Redis round trip."""
    # Revocation is checked with the record (`reconnect`), not on its own.
    subject = await found.authenticator.authenticate(headers, peer, check_revocation=False)
    return session_view(await found.sessions.reconnect(subject, session_id))


async def get_session(request: Request) -> Response:
    """HEAD here; a GET is served by `broker.web.lanes` before Starlette's routing."""
    view = await reconnect_view(
        resources(request), request.headers, peer_address(request.scope),
        request.path_params["session_id"],
    )  # fmt: skip
    return json_response(view, no_store=True)


async def get_result(request: Request) -> Response:
    found = resources(request)
    subject = await found.authenticator.authenticate_request(request)
    record = await found.sessions.readable(subject, request.path_params["session_id"])
    return json_response(await found.sessions.result(record), no_store=True)


async def delete_session(request: Request) -> Response:
    found = resources(request)
    # Revocation is checked with the record, in the same round trip (`reconnect`).
    subject = await found.authenticator.authenticate_request(request, check_revocation=False)
    record = await found.sessions.reconnect(subject, request.path_params["session_id"])
    await found.sessions.delete(record)
    return Response(status_code=204)


async def list_sessions(request: Request) -> Response:
    found = resources(request)
    subject = await found.authenticator.authenticate_request(request)
    limit = bounded_int(request.query_params.get("limit"), "limit", 1, MAX_PAGE, default=20)
    page = await found.sessions.page(subject, limit, request.query_params.get("cursor"))
    items = []
    for record in page.records:
        item = session_view(record)
        item.pop("url", None)
        items.append(item)
    return json_response({"items": items, "next_cursor": page.next_cursor}, no_store=True)


SESSIONS_PATH = "/v1/sessions"

# The create and the lookup are served by `broker.web.lanes` before Starlette's routing; their
# routes stay, for HEAD, the 405s and the access line's route names.
routes = [
    Route(SESSIONS_PATH, create_session, methods=["POST"]),
    Route(SESSIONS_PATH, list_sessions, methods=["GET"]),
    Route(f"{SESSIONS_PATH}/{{session_id}}", get_session, methods=["GET"]),
    Route(f"{SESSIONS_PATH}/{{session_id}}", delete_session, methods=["DELETE"]),
    Route(f"{SESSIONS_PATH}/{{session_id}}/result", get_result, methods=["GET"]),
]
