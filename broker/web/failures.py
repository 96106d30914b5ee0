"""Exceptions as answers: the handlers the app registers, and `answer_failure` for the routes
served outside Starlette's exception middleware (broker/web/lanes.py)."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from broker import errors
from broker.observability.metrics import Metrics
from broker.settings import Settings
from broker.web.problems import error_response

logger = logging.getLogger("broker")

_HTTP_ERRORS: dict[int, type[errors.BrokerError]] = {
    400: errors.BadRequest,
    401: errors.Unauthorized,
    403: errors.Forbidden,
    404: errors.NotFound,
    413: errors.PayloadTooLarge,
}


def _render(request: Request, error: errors.BrokerError) -> Response:
    request_id = str(getattr(request.state, "request_id", "") or "-")
    return error_response(error, request.url.path, request_id)


async def broker_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.BrokerError)
    if 400 <= exc.status_code < 500 and not isinstance(exc, errors.UpstreamError):
        _metrics_of(request).count_refusal(exc)
    return _render(request, exc)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error_class = _HTTP_ERRORS.get(exc.status_code)
    if exc.status_code == 405:
        error_class = errors.MethodNotAllowed
    error = error_class() if error_class else errors.BrokerError()
    if 400 <= error.status_code < 500:
        _metrics_of(request).count_refusal(error)
    response = _render(request, error)
    if exc.headers:
        response.headers.update(exc.headers)
    if exc.status_code == 405:
        response.headers["Allow"] = _allowed_methods(request)
    return response


def _allowed_methods(request: Request) -> str:
    """Every method of every route on this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match != Match.NONE:
                methods.update(route.methods)
    return ", ".join(sorted(methods))


async def redis_error(request: Request, exc: Exception) -> Response:
    logger.error("redis failed: %s", type(exc).__name__)
    _metrics_of(request).count_redis_error(exc)
    retry_after_s = _settings_of(request).retry_after_s
    return _render(
        request, errors.StoreUnavailable("Try again shortly", retry_after_s=retry_after_s)
    )


async def unexpected_error(request: Request, exc: Exception) -> Response:
    return _render(request, errors.BrokerError())


HANDLERS = {
    errors.BrokerError: broker_error,
    HTTPException: http_error,
    RedisError: redis_error,
    Exception: unexpected_error,
}


async def answer_failure(
    exc: errors.BrokerError | RedisError, scope: Scope, receive: Receive, send: Send
) -> None:
    """What the app's handler for `exc` answers, for a route outside Starlette's middleware."""
    request = Request(scope, receive)
    if isinstance(exc, errors.BrokerError):
        response = await broker_error(request, exc)
    else:
        response = await redis_error(request, exc)
    await response(scope, receive, send)


def _metrics_of(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def _settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings
