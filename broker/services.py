"""The resources one app instance works with, opened in the lifespan and handed to handlers."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from broker.gladia import GladiaClient
from broker.idempotency import Idempotency
from broker.identity import Authenticator, ServiceKeys, TokenService
from broker.limits import Limits
from broker.policy import SessionPolicy
from broker.settings import Settings
from broker.store import SessionStore


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


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found
