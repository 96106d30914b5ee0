"""Tokens for the app's users: minted with bindings, revoked one by one or by subject."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker.errors import FieldProblem, Forbidden, InvalidFields, Unauthorized
from broker.identity.credentials import MintedToken, validate_subject
from broker.identity.grants import BINDING_FIELDS
from broker.identity.revocation import not_before_value
from broker.web.http import json_response, read_json
from broker.web.resources import Resources, resources

_ALLOWED = frozenset({"sub", "ttl"}) | BINDING_FIELDS
_REVOKE_ALLOWED = frozenset({"not_before"})


async def mint_token(request: Request) -> Response:
    found = resources(request)
    found.service_keys.check(request.headers)
    body = await _object(request, found, _ALLOWED, required=True)
    minted = found.tokens.mint_request(body)
    return json_response(minted_answer(minted), 201, no_store=True)


def minted_answer(minted: MintedToken) -> dict[str, Any]:
    """What a mint answers (the CLI prints the same): the token, its id, expiry, bindings."""
    answer: dict[str, Any] = {
        "token": minted.token,
        "token_id": minted.token_id,
        "expires_at": minted.expires_at.isoformat().replace("+00:00", "Z"),
    }
    bindings = minted.bindings.as_response()
    if bindings:
        answer["bindings"] = bindings
    return answer


async def revoke_token(request: Request) -> Response:
    """The service key revokes any token; a user token, only itself."""
    found = resources(request)
    token_id = request.path_params["token_id"]
    try:
        found.service_keys.check(request.headers)
    except Unauthorized:
        subject = await found.authenticator.authenticate_request(request)
        if subject.grant.token_id != token_id:
            raise Forbidden("A user token may revoke only itself") from None
    await found.revocations.revoke_token(token_id)
    return Response(status_code=204)


async def revoke_subject(request: Request) -> Response:
    """Every credential of the subject issued until `not_before` (default now) is refused."""
    found = resources(request)
    found.service_keys.check(request.headers)
    body = await _object(request, found, _REVOKE_ALLOWED, required=False)
    subject_id = validate_subject(request.path_params["sub"])
    not_before = not_before_value(body.get("not_before"), found.settings.token_max_ttl_s)
    held = await found.revocations.revoke_subject(subject_id, not_before)
    return json_response({"sub": subject_id, "not_before": held})


async def _object(
    request: Request, found: Resources, allowed: frozenset[str], *, required: bool
) -> dict[str, Any]:
    body = await read_json(request, found.settings.max_body_bytes, required=required)
    if not isinstance(body, dict):
        raise InvalidFields(problems=(FieldProblem("body", "must be a JSON object"),))
    unknown = sorted(set(body) - allowed)
    if unknown:
        problems = tuple(FieldProblem(name, "is not an allowed field") for name in unknown)
        raise InvalidFields("Unknown fields", problems=problems)
    return body


routes = [
    Route("/v1/tokens", mint_token, methods=["POST"]),
    Route("/v1/tokens/{token_id}", revoke_token, methods=["DELETE"]),
    Route("/v1/subjects/{sub}/revoke", revoke_subject, methods=["POST"]),
]
