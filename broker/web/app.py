"""`create_app(settings)`: routes, middleware and error mapping; the lifespan opens the rest."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route

from broker.events.callbacks import CallbackCapabilities
from broker.identity.oidc import jwks_tls_context
from broker.observability.logs import AccessLog, install_redaction
from broker.observability.metrics import Metrics
from broker.policy.init_body import SessionPolicy
from broker.settings import Settings
from broker.web import failures
from broker.web.edge import CorsHeaders, EdgeMiddleware
from broker.web.lanes import HotLanes
from broker.web.lifespan import open_resources
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
        exception_handlers=dict(failures.HANDLERS),
    )
    # Starlette would answer `/v1/sessions/` with a redirect built from the Host header, a host
    # the client chose: a trailing slash is no route (404), and every URL comes from settings.
    app.router.redirect_slashes = False
    app.state.settings = settings
    app.state.metrics = metrics
    return app


def _middleware(settings: Settings, metrics: Metrics, routes: list[BaseRoute]) -> list[Middleware]:
    """Outermost first: the client's address, then the edge (request id, access line, CORS,
    attempt guard; broker/web/edge.py), then the lookup's and the create's own lanes."""
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
        Middleware(HotLanes),
    ]


def create_metrics_app(broker_app: Starlette) -> Starlette:
    """`/metrics` alone, for a port the gateway does not route to; it reads `broker_app`'s."""
    app = Starlette(routes=list(ops.metrics_routes))
    app.router.redirect_slashes = False  # as in create_app: no redirect built from Host
    app.state.metrics = broker_app.state.metrics
    return app
