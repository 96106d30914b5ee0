"""The resources one app instance works with, opened in the lifespan and handed to handlers."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from broker.events.callbacks import CallbackCapabilities
from broker.events.intake import EventIntake, StreamSlots
from broker.events.webhooks import WebhookVerifier
from broker.gladia.client import GladiaClient
from broker.identity.credentials import Authenticator, ServiceKeys, TokenService
from broker.policy.idempotency import Idempotency
from broker.policy.init_body import SessionPolicy
from broker.policy.limits import Limits
from broker.sessions.create_writes import CreateWrites
from broker.settings import Settings
from broker.store.events import EventStore
from broker.store.records import SessionStore


@dataclass(frozen=True)
class Services:
    settings: Settings
    tokens: TokenService
    service_keys: ServiceKeys
    authenticator: Authenticator
    policy: SessionPolicy
    gladia: GladiaClient
    store: SessionStore
    limits: Limits
    idempotency: Idempotency
    capabilities: CallbackCapabilities
    webhooks: WebhookVerifier
    events: EventStore
    intake: EventIntake
    create_writes: CreateWrites
    event_streams: StreamSlots


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found
