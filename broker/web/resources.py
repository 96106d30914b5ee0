"""What the handlers reach, built once per app in the lifespan (broker/web/lifespan.py)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from broker.events.callbacks import CallbackCapabilities
from broker.events.intake import EventIntake
from broker.events.webhooks import WebhookVerifier
from broker.identity.credentials import Authenticator, ServiceKeys, TokenService
from broker.identity.revocation import Revocations
from broker.policy.limits import Limits
from broker.policy.usage import Usage
from broker.sessions.creation import SessionCreator
from broker.sessions.lifecycle import SessionLifecycle
from broker.settings import Settings
from broker.store.events import EventStore
from broker.store.records import SessionStore
from broker.web.streams import StreamSlots


@dataclass(frozen=True)
class Resources:
    settings: Settings
    authenticator: Authenticator
    tokens: TokenService
    service_keys: ServiceKeys
    revocations: Revocations
    creator: SessionCreator
    sessions: SessionLifecycle
    # Event history for its owner, and the cap on streams of it this instance holds open.
    events: EventStore
    event_streams: StreamSlots
    # What Gladia sends: capability-bound callbacks and signed account webhooks.
    capabilities: CallbackCapabilities
    webhooks: WebhookVerifier
    intake: EventIntake
    # The attempt guard's counters, and the store /readyz pings.
    limits: Limits
    store: SessionStore
    # Each subject's audio seconds per day (GET /v1/usage).
    usage: Usage


def resources(request: Request) -> Resources:
    found: Resources = request.app.state.resources
    return found
