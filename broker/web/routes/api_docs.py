"""`GET /openapi.json`: the broker's API description (broker/web/openapi.py)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from broker.web.openapi import build_openapi
from broker.web.resources import services


async def openapi_json(request: Request) -> Response:
    document: dict[str, Any] | None = getattr(request.app.state, "openapi", None)
    if document is None:
        document = build_openapi(request.app.state.settings, services(request).policy.rules)
        request.app.state.openapi = document
    return JSONResponse(document)


routes = [Route("/openapi.json", openapi_json, methods=["GET"])]
