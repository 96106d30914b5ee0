"""What one app instance opens as it starts, the objects built on it, and their closing."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import httpx
import redis.asyncio as redis

from broker.events.callbacks import CallbackCapabilities
from broker.events.intake import (
    RELAY_QUEUE,
    RESULT_FETCH_POLICY,
    RESULT_QUEUE,
    EventIntake,
)
from broker.events.jobs import BackgroundJobs, JobRunner, QueuePolicy
from broker.events.relay import DeadLetters, Relay, open_relay_client
from broker.events.results import ResultFetcher
from broker.events.webhooks import WebhookVerifier
from broker.gladia.client import GladiaClient, open_gladia
from broker.identity.credentials import (
    Authenticator,
    GatewayIdentity,
    ServiceKeys,
    TokenService,
    TrustedProxies,
)
from broker.identity.grants import BindingRules
from broker.identity.oidc import JwksCache, JwtVerifier, open_jwks_client
from broker.identity.revocation import Revocations
from broker.observability.metrics import Metrics, QueueCounts, QueueSource
from broker.policy.idempotency import Idempotency
from broker.policy.init_body import SessionPolicy
from broker.policy.limits import Limits
from broker.policy.usage import Usage
from broker.sessions.create_writes import CreateWrites
from broker.sessions.creation import SessionCreator
from broker.sessions.lifecycle import SessionLifecycle
from broker.settings import Settings
from broker.store.connection import open_redis
from broker.store.events import EventStore
from broker.store.records import SessionStore
from broker.web.resources import Resources
from broker.web.streams import StreamSlots

logger = logging.getLogger("broker")


@asynccontextmanager
async def open_resources(
    settings: Settings,
    metrics: Metrics,
    policy: SessionPolicy,
    capabilities: CallbackCapabilities,
    jwks_tls_context: ssl.SSLContext | None,
) -> AsyncIterator[Resources]:
    """Redis and the HTTP clients, open while the app serves; the background jobs running.

    `jwks_tls_context` is given in `jwt` mode only: the CAs the identity provider is checked with.
    """
    async with AsyncExitStack() as opened:
        redis_client = open_redis(settings)
        opened.push_async_callback(redis_client.aclose)
        gladia = await opened.enter_async_context(open_gladia(settings, metrics))
        jwks_client = None
        if jwks_tls_context is not None:
            jwks_client = open_jwks_client(settings, jwks_tls_context)
            opened.push_async_callback(jwks_client.aclose)
        relay_client = None
        if settings.relay_url:
            relay_client = open_relay_client(settings)
            opened.push_async_callback(relay_client.aclose)

        clients = _Clients(redis_client, gladia, relay_client)
        resources, jobs = _build(settings, metrics, policy, capabilities, clients, jwks_client)
        jobs.start()
        opened.push_async_callback(jobs.stop)
        try:
            yield resources
        finally:
            # uvicorn has stopped accepting and let requests in flight finish (within
            # BROKER_SHUTDOWN_TIMEOUT_S) before this runs; the stack then closes in reverse.
            logger.info("shutting down: closing the Gladia and Redis clients")


@dataclass(frozen=True)
class _Clients:
    redis: redis.Redis
    gladia: GladiaClient
    relay: httpx.AsyncClient | None


def _build(
    settings: Settings,
    metrics: Metrics,
    policy: SessionPolicy,
    capabilities: CallbackCapabilities,
    clients: _Clients,
    jwks_client: httpx.AsyncClient | None,
) -> tuple[Resources, BackgroundJobs]:
    """Each object gets the few parts it works with; handlers get the top of the tree."""
    store = SessionStore(clients.redis, settings)
    limits = Limits(clients.redis, settings)
    # The account's live sessions, as every instance counts them: its leases in Redis.
    metrics.track_live_sessions(limits.live_leases)
    events = EventStore(clients.redis, settings)
    usage = Usage(clients.redis, metrics)
    results = ResultFetcher(store, clients.gladia, limits, usage)
    jobs, intake = _background_jobs(settings, metrics, events, store, results, clients.relay)
    for queue in (RESULT_QUEUE, RELAY_QUEUE) if clients.relay is not None else (RESULT_QUEUE,):
        metrics.track_job_queue(queue, _queue_counts(events, queue))
    event_streams = StreamSlots(settings.sse_max_streams)
    metrics.track_open_streams(lambda: event_streams.open)
    webhooks = WebhookVerifier(settings.gladia_webhook_secrets)
    writes = CreateWrites(
        clients.redis,
        store,
        limits,
        events,
        take_early=capabilities.enabled,
        legacy_binding=settings.legacy_records
        and (capabilities.enabled or clients.relay is not None),
        keep_subject=clients.relay is not None,
        note_session_owner=webhooks.configured,
    )
    idempotency = Idempotency(clients.redis, settings)
    # A token may bind only presets this broker has, within its channel cap.
    binds = BindingRules(policy.rules.max_channels, presets=frozenset(policy.rules.presets))
    tokens = TokenService(
        settings.secret_keys, settings.token_ttl_s, settings.token_max_ttl_s, binds
    )
    revocations = Revocations(clients.redis, settings)
    resources = Resources(
        settings=settings,
        authenticator=_authenticator(settings, tokens, jwks_client, revocations),
        tokens=tokens,
        service_keys=ServiceKeys(settings.service_keys),
        revocations=revocations,
        creator=SessionCreator(policy, idempotency, limits, clients.gladia, store, writes, intake),
        sessions=SessionLifecycle(store, events, limits, clients.gladia, results, revocations),
        events=events,
        event_streams=event_streams,
        capabilities=capabilities,
        webhooks=webhooks,
        intake=intake,
        limits=limits,
        store=store,
        usage=usage,
    )
    return resources, jobs


def _authenticator(
    settings: Settings,
    tokens: TokenService,
    jwks_client: httpx.AsyncClient | None,
    revocations: Revocations,
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
    return Authenticator(
        tokens,
        modes=settings.auth_modes,
        jwt=jwt_verifier,
        gateway=gateway,
        revocations=revocations,
    )


def _background_jobs(
    settings: Settings,
    metrics: Metrics,
    events: EventStore,
    store: SessionStore,
    results: ResultFetcher,
    relay_client: httpx.AsyncClient | None,
) -> tuple[BackgroundJobs, EventIntake]:
    """The queues this instance drains (result fetches, the relay) and the intake feeding them."""
    fetches = JobRunner(events, RESULT_QUEUE, results, RESULT_FETCH_POLICY, settings.worker_poll_s)
    runners = [fetches]
    if relay_client is not None:
        relay_policy = QueuePolicy(
            lease_s=settings.relay_timeout_s + 5,
            backoff_s=settings.relay_backoff_s,
            max_backoff_s=settings.relay_max_backoff_s,
        )
        relay = Relay(relay_client, events, store, settings, metrics)
        metrics.track_relay_dead_letters(DeadLetters(events).count)
        runners.append(JobRunner(events, RELAY_QUEUE, relay, relay_policy, settings.worker_poll_s))
    intake = EventIntake(
        events,
        relay_enabled=relay_client is not None,
        wake_result_fetch=fetches.wake,
        wake_relay=runners[-1].wake,
    )
    return BackgroundJobs(runners), intake


def _queue_counts(events: EventStore, queue: str) -> QueueSource:
    """A job queue's depth for its gauges, read from the store at each scrape."""

    async def count() -> QueueCounts:
        waiting, retrying = await events.count_waiting(queue)
        return QueueCounts(waiting=waiting, retrying=retrying)

    return count
