"""`GET /openapi.json`: the broker's API description (broker/web/openapi/)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from broker.policy.rules import PolicyRules
from broker.settings import Settings
from broker.web.openapi import build_openapi


def openapi_routes(settings: Settings, rules: PolicyRules) -> list[BaseRoute]:
    built: list[dict[str, Any]] = []

    async def openapi_json(request: Request) -> Response:
        # Built on the first request, not with the app: most instances are never asked.
        if not built:
            built.append(build_openapi(settings, rules))
        return JSONResponse(built[0])

    return [Route("/openapi.json", openapi_json, methods=["GET"])]
