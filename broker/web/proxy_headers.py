"""The client's address behind the gateway, with the TCP peer kept for the `gateway` mode."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware as UvicornProxyHeaders

from broker.identity.credentials import PEER_STATE_KEY


class ProxyHeadersMiddleware:
    """uvicorn's X-Forwarded-For rules over `BROKER_TRUSTED_PROXIES`, after noting the TCP peer.

    `broker serve` turns uvicorn's proxy headers off so that this runs once, with the same list
    that decides whether the gateway's identity header is believed: the peer must be known
    before the client address is rewritten, or a forged X-Forwarded-For could pose as the gateway.
    """

    def __init__(self, app: ASGIApp, trusted_proxies: tuple[str, ...]) -> None:
        # uvicorn types an ASGI app over its own TypedDict scopes, Starlette over plain mappings:
        # the same objects at run time, two types that mypy cannot match.
        self._app = UvicornProxyHeaders(
            app,  # type: ignore[arg-type]  # Starlette's ASGIApp as uvicorn's ASGI3Application
            trusted_hosts=list(trusted_proxies),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            client = scope.get("client")
            scope.setdefault("state", {})[PEER_STATE_KEY] = str(client[0]) if client else None
        await self._app(scope, receive, send)  # type: ignore[arg-type]  # uvicorn's Scope, as above
