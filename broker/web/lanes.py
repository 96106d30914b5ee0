"""The two requests a broker answers most, served before Starlette's routing, in plain ASGI.

- `GET /v1/sessions/{id}`, the reconnect lookup. Its own work is small: the token (cached once
  verified), one Redis round trip (the record and the credential's revocations), the owner's
  view. Through Starlette's exception middleware, router, request and response objects, the
  framework cost more than the lookup (docs/performance.md).
- `POST /v1/sessions`, the create: its route's own function (`create_session`) with a Request
  made here, without the router and the two exception layers around it.

HEAD and DELETE on those paths, and every other route, go through Starlette. Refusals are
answered by the app's own handlers (`broker.web.failures`), so both ways answer alike.
"""

from __future__ import annotations

from redis.exceptions import RedisError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from broker.errors import BrokerError
from broker.identity.credentials import peer_address
from broker.web.failures import answer_failure
from broker.web.http import json_body
from broker.web.resources import Resources
from broker.web.routes.sessions import SESSIONS_PATH, create_session, get_session, reconnect_view

# The route's own pattern, compiled as Starlette compiles it, so both match the same paths.
_PATH = compile_path(f"{SESSIONS_PATH}/{{session_id}}")[0]
_HEADERS = ((b"content-type", b"application/json"), (b"cache-control", b"no-store"))


def reconnect_id(path: str) -> str | None:
    """The session id of a `/v1/sessions/{id}` path."""
    matched = _PATH.match(path)
    return matched["session_id"] if matched else None


class HotLanes:
    """Serves the lookup and the create itself; hands every other request to `app`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["method"] == "POST" and scope["path"] == SESSIONS_PATH:
                await self._create(scope, receive, send)
                return
            if scope["method"] == "GET":
                session_id = reconnect_id(scope["path"])
                if session_id is not None:
                    await self._lookup(scope, receive, send, session_id)
                    return
        await self.app(scope, receive, send)

    async def _lookup(self, scope: Scope, receive: Receive, send: Send, session_id: str) -> None:
        # As the route would: the access line and the metrics name it by its template.
        scope["endpoint"] = get_session
        found: Resources = scope["app"].state.resources
        try:
            view = await reconnect_view(
                found, Headers(scope=scope), peer_address(scope), session_id
            )
        except (BrokerError, RedisError) as exc:
            await answer_failure(exc, scope, receive, send)
            return
        body = json_body(view)
        headers = [*_HEADERS, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _create(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["endpoint"] = create_session
        try:
            response = await create_session(Request(scope, receive))
        except (BrokerError, RedisError) as exc:
            await answer_failure(exc, scope, receive, send)
            return
        await response(scope, receive, send)
