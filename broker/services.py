"""The resources one app instance works with, opened in the lifespan and handed to handlers."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from broker.callbacks import CallbackCapabilities
from broker.create_writes import CreateWrites
from broker.event_store import EventStore
from broker.events import EventIntake, StreamSlots
from broker.gladia import GladiaClient
from broker.idempotency import Idempotency
from broker.identity import Authenticator, ServiceKeys, TokenService
from broker.limits import Limits
from broker.policy import SessionPolicy
from broker.settings import Settings
from broker.store import SessionStore
from broker.webhooks import WebhookVerifier


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
