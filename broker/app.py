"""`create_app(settings)`: routes, middleware, error mapping, and the lifespan's resources."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from broker import errors
from broker.gladia import GladiaClient, open_http_client
from broker.identity import Authenticator, ServiceKeys, TokenService
from broker.metrics import Metrics
from broker.observability import AccessLogMiddleware, install_redaction
from broker.policy import SessionPolicy
from broker.redis_connection import open_redis
from broker.routes import ops, sessions, tokens
from broker.services import Services
from broker.settings import Settings
from broker.store import SessionStore

logger = logging.getLogger("broker")

_HTTP_ERRORS: dict[int, type[errors.BrokerError]] = {
    400: errors.BadRequest,
    401: errors.Unauthorized,
    404: errors.NotFound,
    413: errors.PayloadTooLarge,
}


class MethodNotAllowed(errors.BrokerError):
    status_code = 405
    title = "Method not allowed"


async def _broker_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.BrokerError)
    if 400 <= exc.status_code < 500 and not isinstance(exc, errors.UpstreamError):
        _metrics_of(request).count_refusal(exc)
    return errors.problem_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error_class = _HTTP_ERRORS.get(exc.status_code)
    if exc.status_code == 405:
        error_class = MethodNotAllowed
    error = error_class() if error_class else errors.BrokerError()
    if 400 <= error.status_code < 500:
        _metrics_of(request).count_refusal(error)
    response = errors.problem_response(error)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _redis_error(request: Request, exc: Exception) -> Response:
    logger.error("redis failed: %s", type(exc).__name__)
    _metrics_of(request).count_redis_error(exc)
    retry_after_s = _settings_of(request).retry_after_s
    return errors.problem_response(
        errors.StoreUnavailable("Try again shortly", retry_after_s=retry_after_s)
    )


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    return errors.problem_response(errors.BrokerError())


def _metrics_of(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def _settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def build_routes() -> list[BaseRoute]:
    return [*sessions.routes, *tokens.routes, *ops.routes]


def create_app(settings: Settings) -> Starlette:
    """The broker as an ASGI app; its Redis and Gladia clients open and close with the lifespan."""
    install_redaction(settings.all_secrets())
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redis_client = open_redis(settings)
        http_client = open_http_client(settings)
        tokens_service = TokenService(
            settings.secret_keys, settings.token_ttl_s, settings.token_max_ttl_s
        )
        app.state.services = Services(
            settings=settings,
            tokens=tokens_service,
            service_keys=ServiceKeys(settings.service_keys),
            authenticator=Authenticator(tokens_service),
            policy=SessionPolicy(settings.max_channels, settings.gladia_region),
            gladia=GladiaClient(http_client, settings, metrics),
            store=SessionStore(redis_client, settings),
        )
        try:
            yield
        finally:
            # uvicorn has stopped accepting and let requests in flight finish (within
            # BROKER_SHUTDOWN_TIMEOUT_S) before this runs.
            logger.info("shutting down: closing the Gladia and Redis clients")
            await http_client.aclose()
            await redis_client.aclose()

    routes = build_routes()
    if settings.metrics_port is None:
        # Otherwise `broker serve` exports them on their own port (create_metrics_app).
        routes.extend(ops.metrics_routes)
    route_names = {route.endpoint: route.path for route in routes if isinstance(route, Route)}
    middleware = [
        Middleware(AccessLogMiddleware, route_names=route_names, metrics=metrics),
        Middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["authorization", "content-type", "x-gladia-version", "idempotency-key"],
            expose_headers=["x-request-id", "retry-after"],
            max_age=600,
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            errors.BrokerError: _broker_error,
            HTTPException: _http_error,
            RedisError: _redis_error,
            Exception: _unexpected_error,
        },
    )
    app.state.settings = settings
    app.state.metrics = metrics
    return app


def create_metrics_app(broker_app: Starlette) -> Starlette:
    """`/metrics` alone, for a port the gateway does not route to; it reads `broker_app`'s."""
    app = Starlette(routes=list(ops.metrics_routes))
    app.state.metrics = broker_app.state.metrics
    return app
