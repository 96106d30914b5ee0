"""Gladia's live REST API: create, get, list, delete, and the recorded audio file."""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from broker.simulator import listing, views, wav
from broker.simulator.errors import GladiaError
from broker.simulator.state import SimulatorState
from broker.simulator.timestamps import iso
from broker.simulator.validation import validate_region, validate_streaming_request

NOT_DELETABLE = "Live transcription cannot be deleted before it is done"


def require_key(request: Request, api_key: bytes) -> None:
    """Refuse a request without the account's ``x-gladia-key`` (401)."""
    key = request.headers.get("x-gladia-key")
    if not key:
        raise GladiaError(401, "no gladia key provided")
    if not hmac.compare_digest(key.encode(), api_key):
        raise GladiaError(401, "gladia key not found")


def base_url(request: Request) -> str:
    """The simulator's own base URL as the client reached it, mount prefix (root_path) included."""
    scope = request.scope
    scheme = scope.get("scheme", "http")
    host = request.headers.get("host")
    if not host:
        server_host, port = scope.get("server") or ("localhost", None)
        host = server_host if port in (None, 80, 443) else f"{server_host}:{port}"
    return f"{scheme}://{host}{scope.get('root_path', '')}".rstrip("/")


def socket_url(request: Request, token: str) -> str:
    """The live socket URL for a token, on the host and scheme the client used (http→ws)."""
    http_base = base_url(request)
    scheme, rest = http_base.split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/v2/live?token={token}"


class RestApi:
    """The /v2/live endpoints over one simulator's state."""

    def __init__(self, state: SimulatorState) -> None:
        self._state = state
        self._api_key = state.config.api_key.encode()

    def routes(self) -> list[BaseRoute]:
        """The REST routes."""
        return [
            Route("/v2/live", self.create, methods=["POST"]),
            Route("/v2/live", self.list, methods=["GET"]),
            Route("/v2/live/{id}", self.get, methods=["GET"]),
            Route("/v2/live/{id}", self.delete, methods=["DELETE"]),
            Route("/v2/live/{id}/file", self.file, methods=["GET"]),
        ]

    async def create(self, request: Request) -> Response:
        """POST /v2/live: validate, open a session, and hand back its socket URL (201)."""
        require_key(request, self._api_key)
        query = request.query_params if request.scope["query_string"] else None
        region = validate_region(query.get("region") if query else None)
        validated = validate_streaming_request(await _json_body(request))
        session = await self._state.create_session(validated, region)
        body = {
            "id": session.id,
            "created_at": iso(session.created_at),
            "url": socket_url(request, session.token),
        }
        return JSONResponse(body, status_code=201)

    async def get(self, request: Request) -> Response:
        """GET /v2/live/{id}: status, effective parameters, and the result once done."""
        require_key(request, self._api_key)
        session = self._state.store.get(request.path_params["id"])
        return JSONResponse(views.session_json(session))

    async def list(self, request: Request) -> Response:
        """GET /v2/live: newest first, filtered, paginated with absolute links."""
        require_key(request, self._api_key)
        query = listing.parse_list_query(request.query_params)
        found = [s for s in reversed(self._state.store.sessions.values()) if query.matches(s)]
        page = found[query.offset : query.offset + query.limit]
        links = listing.page_links(
            base_url(request) + "/v2/live", request.query_params, query, len(found)
        )
        return JSONResponse({**links, "items": [views.session_json(s) for s in page]})

    async def delete(self, request: Request) -> Response:
        """DELETE /v2/live/{id}: 202 once done or failed, 403 before, 404 when unknown."""
        require_key(request, self._api_key)
        session = self._state.store.get(request.path_params["id"])
        if session.is_live:
            raise GladiaError(403, NOT_DELETABLE)
        self._state.store.delete(session)
        return Response(status_code=202)

    async def file(self, request: Request) -> Response:
        """GET /v2/live/{id}/file: the audio received so far as WAV (404 before any audio)."""
        require_key(request, self._api_key)
        session = self._state.store.get(request.path_params["id"])
        if session.bytes_received == 0:
            raise GladiaError(404, "File not found")
        audio = bytes(session.audio)
        # A WAV header the client sent at the start is replaced by ours, not nested inside it.
        offset = wav.audio_offset(audio[: wav.MAX_HEADER_BYTES]) or 0
        content = wav.wav_file(audio[offset:], session.audio_format)
        return Response(content, media_type="application/octet-stream")


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise GladiaError(400, "Invalid JSON body", ["body must be valid JSON"]) from None
