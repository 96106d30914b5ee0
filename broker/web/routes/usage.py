"""`GET /v1/usage`: a user's audio seconds per UTC day, for the user or for the app's backend.

A user token reads its own usage; a service key reads any user's, named by `?sub=`. The days
are `from` to `to` (UTC, `YYYY-MM-DD`, both included, at most 31 of them; each defaults to
today, `from` to `to`).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker.errors import BadRequest, FieldProblem, Forbidden, Unauthorized
from broker.identity.credentials import Subject, validate_subject
from broker.policy.usage import MAX_DAYS
from broker.web.http import json_response
from broker.web.resources import Resources, resources

PARAMS = ("sub", "from", "to")
DAY_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_DAY = re.compile(DAY_PATTERN)


def _refuse(name: str, message: str) -> BadRequest:
    return BadRequest(f"{name} {message}", problems=(FieldProblem(name, message),))


def _single(params: QueryParams, name: str) -> str | None:
    values = params.getlist(name)
    if len(values) > 1:
        raise _refuse(name, "may be given once")
    return values[0] if values else None


def _day(params: QueryParams, name: str, default: date) -> date:
    text = _single(params, name)
    if text is None:
        return default
    try:
        if not _DAY.match(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise _refuse(name, "must be a day, YYYY-MM-DD") from None


def requested_days(params: QueryParams, today: date) -> tuple[date, date]:
    """The first and last day asked for; a 400 naming the parameter otherwise."""
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise BadRequest(
            f"Unknown query parameter {unknown[0]!r}: only {', '.join(PARAMS)} are",
            problems=tuple(
                FieldProblem(name, "is not a parameter of this route") for name in unknown
            ),
        )
    last = _day(params, "to", today)
    first = _day(params, "from", last)
    if first > last:
        raise _refuse("from", "must not be after to")
    if (last - first).days + 1 > MAX_DAYS:
        raise _refuse("from", f"must be at most {MAX_DAYS - 1} days before to ({MAX_DAYS} days)")
    return first, last


async def _whose(request: Request, found: Resources) -> tuple[str, str | None]:
    """The key of the subject whose usage the caller may read, and the `sub` it named."""
    try:
        found.service_keys.check(request.headers)
    except Unauthorized:
        pass  # not the app's backend: a user, or nobody
    else:
        sub = _single(request.query_params, "sub")
        if sub is None:
            raise _refuse("sub", "is required with a service key: it names the user")
        return Subject(id=validate_subject(sub)).key, sub
    subject = await found.authenticator.authenticate_request(request)
    sub = _single(request.query_params, "sub")
    if sub is not None and sub != subject.id:
        raise Forbidden("A user token reads only its own usage; leave out sub")
    await found.limits.spend_reads(subject.key)
    return subject.key, sub


async def get_usage(request: Request) -> Response:
    found = resources(request)
    subject_key, sub = await _whose(request, found)
    first, last = requested_days(request.query_params, datetime.now(UTC).date())
    days = await found.usage.days(subject_key, first, last)
    body: dict[str, Any] = {} if sub is None else {"subject": sub}
    body["days"] = [day.as_dict() for day in days]
    body["total_seconds"] = round(sum(day.seconds for day in days), 3)
    return json_response(body, no_store=True)


routes = [Route("/v1/usage", get_usage, methods=["GET"])]
