"""`create_app(settings)`: routes, middleware and error mapping; the lifespan opens the rest."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route

from broker import errors
from broker.events.callbacks import CallbackCapabilities
from broker.identity.oidc import jwks_tls_context
from broker.observability.logs import AccessLog, install_redaction
from broker.observability.metrics import Metrics
from broker.policy.init_body import SessionPolicy
from broker.settings import Settings
from broker.web.edge import CorsHeaders, EdgeMiddleware
from broker.web.lifespan import open_resources
from broker.web.problems import error_response
from broker.web.proxy_headers import ProxyHeadersMiddleware
from broker.web.routes import (
    api_docs,
    callbacks,
    events,
    facade,
    ops,
    problems,
    sessions,
    tokens,
    usage,
)
from broker.web.routes.demo import DemoOptions, demo_routes

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


async def _broker_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.BrokerError)
    if 400 <= exc.status_code < 500 and not isinstance(exc, errors.UpstreamError):
        _metrics_of(request).count_refusal(exc)
    return _render(request, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
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


async def _redis_error(request: Request, exc: Exception) -> Response:
    logger.error("redis failed: %s", type(exc).__name__)
    _metrics_of(request).count_redis_error(exc)
    retry_after_s = _settings_of(request).retry_after_s
    return _render(
        request, errors.StoreUnavailable("Try again shortly", retry_after_s=retry_after_s)
    )


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    return _render(request, errors.BrokerError())


def _metrics_of(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


def _settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def build_routes() -> list[BaseRoute]:
    return [
        *sessions.routes,
        *events.routes,
        *callbacks.routes,
        *facade.routes,
        *tokens.routes,
        *usage.routes,
        *ops.routes,
        *problems.routes,
    ]


def create_app(settings: Settings, demo: DemoOptions | None = None) -> Starlette:
    """The broker as an ASGI app; its Redis and Gladia clients open and close with the lifespan.

    `demo` serves the /demo page (what `broker dev` passes); without it, `BROKER_DEMO` decides.
    """
    install_redaction(settings.all_secrets())
    metrics = Metrics()
    capabilities = CallbackCapabilities(
        settings.secret_keys, settings.callback_ttl_s, settings.public_url, settings.callback_events
    )
    # Read before serving, so a bad BROKER_POLICY_FILE stops `serve` with the field named.
    policy = SessionPolicy.from_settings(
        settings, capabilities.callback_config if capabilities.enabled else None
    )
    # Likewise a BROKER_JWT_CA_FILE that cannot be used.
    jwks_tls = jwks_tls_context(settings) if "jwt" in settings.auth_modes else None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_resources(settings, metrics, policy, capabilities, jwks_tls) as resources:
            app.state.resources = resources
            yield

    routes = [*build_routes(), *api_docs.openapi_routes(settings, policy.rules)]
    if settings.metrics_port is None:
        # Otherwise `broker serve` exports them on their own port (create_metrics_app).
        routes.extend(ops.metrics_routes)
    if demo is None and settings.demo_enabled:
        demo = DemoOptions()
    if demo is not None:
        routes.extend(demo_routes(demo))
    app = Starlette(
        routes=routes,
        middleware=_middleware(settings, metrics, routes),
        lifespan=lifespan,
        exception_handlers={
            errors.BrokerError: _broker_error,
            HTTPException: _http_error,
            RedisError: _redis_error,
            Exception: _unexpected_error,
        },
    )
    # Starlette would answer `/v1/sessions/` with a redirect built from the Host header, a host
    # the client chose: a trailing slash is no route (404), and every URL comes from settings.
    app.router.redirect_slashes = False
    app.state.settings = settings
    app.state.metrics = metrics
    return app


def _middleware(settings: Settings, metrics: Metrics, routes: list[BaseRoute]) -> list[Middleware]:
    """Outermost first: the client's address, then the edge (request id, access line, CORS,
    attempt guard; broker/web/edge.py)."""
    route_names = {route.endpoint: route.path for route in routes if isinstance(route, Route)}
    cors = CorsHeaders(
        settings.cors_origins,
        methods=["GET", "POST", "DELETE"],
        headers=["authorization", "content-type", "x-gladia-version", "idempotency-key"],
        expose=["x-request-id", "retry-after"],
        max_age_s=600,
    )
    return [
        Middleware(ProxyHeadersMiddleware, trusted_proxies=settings.trusted_proxies),
        Middleware(EdgeMiddleware, access=AccessLog(route_names, metrics), cors=cors),
    ]


def create_metrics_app(broker_app: Starlette) -> Starlette:
    """`/metrics` alone, for a port the gateway does not route to; it reads `broker_app`'s."""
    app = Starlette(routes=list(ops.metrics_routes))
    app.router.redirect_slashes = False  # as in create_app: no redirect built from Host
    app.state.metrics = broker_app.state.metrics
    return app
