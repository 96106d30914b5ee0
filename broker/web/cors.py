"""CORS preflights for browsers calling the broker: exact origins only, nothing told to others."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import PlainTextResponse, Response


class StrictPreflight(CORSMiddleware):
    """Starlette's preflight answer, but a refused one names nothing of the policy.

    Starlette lists the allowed methods and headers to any origin; a browser refuses the
    preflight either way, but nothing about the policy need be told. Only the preflight is
    used: the edge (broker/web/edge.py) adds the CORS headers of every other answer.
    """

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 200:
            return PlainTextResponse("Disallowed CORS request", status_code=400)
        return response
