"""CORS for browsers calling the broker: exact origins only, and nothing told to the others."""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse, Response
from starlette.types import Message, Send


class StrictCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, but an origin it refuses gets no `Access-Control-*` header at all.

    Starlette still lists the allowed methods, headers and exposed headers to such an origin;
    a browser refuses the response either way, but nothing about the policy need be told.
    """

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 200:
            return PlainTextResponse("Disallowed CORS request", status_code=400)
        return response

    async def send(self, message: Message, send: Send, request_headers: Headers) -> None:
        origin = request_headers.get("origin")
        if (
            message["type"] == "http.response.start"
            and origin is not None
            and not self.is_allowed_origin(origin=origin)
        ):
            message.setdefault("headers", [])
            MutableHeaders(scope=message).add_vary_header("Origin")
            await send(message)
            return
        await super().send(message, send, request_headers)
