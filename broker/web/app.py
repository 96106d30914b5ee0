"""`create_app(settings)`: routes, middleware, error mapping, and the lifespan's resources."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route

from broker import errors
from broker.errors import MethodNotAllowed
from broker.events.callbacks import CallbackCapabilities
from broker.events.intake import (
    RELAY_QUEUE,
    RESULT_FETCH_POLICY,
    RESULT_QUEUE,
    EventIntake,
    ResultFetcher,
    StreamSlots,
)
from broker.events.jobs import BackgroundJobs, JobRunner, QueuePolicy
from broker.events.relay import Relay, open_relay_client
from broker.events.webhooks import WebhookVerifier
from broker.gladia.client import GladiaClient, open_http_client
from broker.identity.credentials import (
    Authenticator,
    GatewayIdentity,
    ServiceKeys,
    TokenService,
    TrustedProxies,
)
from broker.identity.oidc import JwksCache, JwtVerifier, open_jwks_client
from broker.observability.logs import AccessLogMiddleware, install_redaction
from broker.observability.metrics import Metrics
from broker.policy.idempotency import Idempotency
from broker.policy.init_body import SessionPolicy
from broker.policy.limits import Limits
from broker.sessions.create_writes import CreateWrites
from broker.settings import Settings
from broker.store.connection import open_redis
from broker.store.events import EventStore
from broker.store.records import SessionStore
from broker.web.attempts import AttemptGuardMiddleware
from broker.web.cors import StrictCORSMiddleware
from broker.web.proxy_headers import ProxyHeadersMiddleware
from broker.web.resources import Services
from broker.web.routes import api_docs, callbacks, events, facade, ops, sessions, tokens
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
    return errors.error_response(error, request.url.path, request_id)


async def _broker_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.BrokerError)
    if 400 <= exc.status_code < 500 and not isinstance(exc, errors.UpstreamError):
        _metrics_of(request).count_refusal(exc)
    return _render(request, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error_class = _HTTP_ERRORS.get(exc.status_code)
    if exc.status_code == 405:
        error_class = MethodNotAllowed
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


def _authenticator(
    settings: Settings, tokens: TokenService, jwks_client: httpx.AsyncClient | None
) -> Authenticator:
    jwt_verifier = None
    if jwks_client is not None and settings.jwt_jwks_url:
        jwks = JwksCache(
            jwks_client,
            settings.jwt_jwks_url,
            cache_s=settings.jwt_jwks_cache_s,
            total_timeout_s=settings.jwt_jwks_timeout_s,
        )
        jwt_verifier = JwtVerifier(jwks, settings)
    gateway = None
    if settings.gateway_user_header:
        trusted = TrustedProxies(settings.trusted_proxies)
        gateway = GatewayIdentity(settings.gateway_user_header, trusted)
    return Authenticator(tokens, modes=settings.auth_modes, jwt=jwt_verifier, gateway=gateway)


def _background_jobs(
    settings: Settings,
    event_store: EventStore,
    store: SessionStore,
    gladia: GladiaClient,
    limits: Limits,
    relay_client: httpx.AsyncClient | None,
) -> tuple[BackgroundJobs, EventIntake]:
    """The queues this instance drains (result fetches, the relay) and the intake feeding them."""
    fetcher = ResultFetcher(store, gladia, limits)
    fetches = JobRunner(
        event_store, RESULT_QUEUE, fetcher, RESULT_FETCH_POLICY, settings.worker_poll_s
    )
    runners = [fetches]
    if relay_client is not None:
        relay_policy = QueuePolicy(
            lease_s=settings.relay_timeout_s + 5,
            backoff_s=settings.relay_backoff_s,
            max_backoff_s=settings.relay_max_backoff_s,
        )
        relay = Relay(relay_client, event_store, store, settings)
        runners.append(
            JobRunner(event_store, RELAY_QUEUE, relay, relay_policy, settings.worker_poll_s)
        )
    intake = EventIntake(
        event_store,
        relay_enabled=relay_client is not None,
        wake_result_fetch=fetches.wake,
        wake_relay=runners[-1].wake,
    )
    return BackgroundJobs(runners), intake


def build_routes() -> list[BaseRoute]:
    return [
        *sessions.routes,
        *events.routes,
        *callbacks.routes,
        *facade.routes,
        *tokens.routes,
        *ops.routes,
        *api_docs.routes,
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

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redis_client = open_redis(settings)
        http_client = open_http_client(settings)
        jwks_client = open_jwks_client(settings) if "jwt" in settings.auth_modes else None
        tokens_service = TokenService(
            settings.secret_keys, settings.token_ttl_s, settings.token_max_ttl_s
        )
        relay_client = open_relay_client(settings) if settings.relay_url else None
        gladia = GladiaClient(http_client, settings, metrics)
        store = SessionStore(redis_client, settings)
        limits = Limits(redis_client, settings)
        # The account's live sessions, as every instance counts them: its leases in Redis.
        metrics.track_live_sessions(limits.live_leases)
        event_store = EventStore(redis_client, settings)
        jobs, intake = _background_jobs(settings, event_store, store, gladia, limits, relay_client)
        webhooks = WebhookVerifier(settings.gladia_webhook_secrets)
        create_writes = CreateWrites(
            redis_client,
            store,
            limits,
            event_store,
            bind_callbacks=capabilities.enabled or relay_client is not None,
            keep_subject=relay_client is not None,
            note_session_owner=webhooks.configured,
        )
        app.state.services = Services(
            settings=settings,
            tokens=tokens_service,
            service_keys=ServiceKeys(settings.service_keys),
            authenticator=_authenticator(settings, tokens_service, jwks_client),
            policy=policy,
            gladia=gladia,
            store=store,
            limits=limits,
            idempotency=Idempotency(redis_client, settings),
            capabilities=capabilities,
            webhooks=webhooks,
            events=event_store,
            intake=intake,
            create_writes=create_writes,
            event_streams=StreamSlots(settings.sse_max_streams),
        )
        jobs.start()
        try:
            yield
        finally:
            # uvicorn has stopped accepting and let requests in flight finish (within
            # BROKER_SHUTDOWN_TIMEOUT_S) before this runs.
            logger.info("shutting down: closing the Gladia and Redis clients")
            await jobs.stop()
            if relay_client is not None:
                await relay_client.aclose()
            await http_client.close()
            if jwks_client is not None:
                await jwks_client.aclose()
            await redis_client.aclose()

    routes = build_routes()
    if settings.metrics_port is None:
        # Otherwise `broker serve` exports them on their own port (create_metrics_app).
        routes.extend(ops.metrics_routes)
    if demo is None and settings.demo_enabled:
        demo = DemoOptions()
    if demo is not None:
        routes.extend(demo_routes(demo))
    route_names = {route.endpoint: route.path for route in routes if isinstance(route, Route)}
    middleware = [
        Middleware(ProxyHeadersMiddleware, trusted_proxies=settings.trusted_proxies),
        Middleware(AccessLogMiddleware, route_names=route_names, metrics=metrics),
        Middleware(
            StrictCORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["authorization", "content-type", "x-gladia-version", "idempotency-key"],
            expose_headers=["x-request-id", "retry-after"],
            max_age=600,
        ),
        Middleware(AttemptGuardMiddleware),
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
