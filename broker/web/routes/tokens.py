"""`POST /v1/tokens`: the app's backend mints a short-lived token for one of its users."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker.errors import FieldProblem, InvalidFields
from broker.web.http import json_response, read_json
from broker.web.resources import resources

_ALLOWED = frozenset({"sub", "ttl"})


async def mint_token(request: Request) -> Response:
    found = resources(request)
    found.service_keys.check(request.headers)
    body = await read_json(request, found.settings.max_body_bytes)
    if not isinstance(body, dict):
        raise InvalidFields(problems=(FieldProblem("body", "must be a JSON object"),))
    unknown = sorted(set(body) - _ALLOWED)
    if unknown:
        problems = tuple(FieldProblem(name, "is not an allowed field") for name in unknown)
        raise InvalidFields("Unknown fields", problems=problems)
    minted = found.tokens.mint(body.get("sub"), body.get("ttl"))
    expires_at = minted.expires_at.isoformat().replace("+00:00", "Z")
    return json_response({"token": minted.token, "expires_at": expires_at}, 201, no_store=True)


routes = [Route("/v1/tokens", mint_token, methods=["POST"])]
