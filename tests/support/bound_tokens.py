"""User tokens minted with bindings, for the tests of what bindings allow."""

from __future__ import annotations

from typing import Any

from broker.identity.credentials import TokenService
from broker.identity.grants import Bindings
from broker.settings import Settings


def token_service(settings: Settings) -> TokenService:
    return TokenService(settings.secret_keys, settings.token_ttl_s, settings.token_max_ttl_s)


def bound_headers(settings: Settings, subject: str, **bindings: Any) -> dict[str, str]:
    """Authorization headers for a token of `subject` minted with these bindings."""
    minted = token_service(settings).mint(subject, bindings=Bindings(**bindings))
    return {"Authorization": f"Bearer {minted.token}"}


def token_id_of(settings: Settings, headers: dict[str, str]) -> str:
    """The id of the token in these headers."""
    token = headers["Authorization"].removeprefix("Bearer ")
    token_id = token_service(settings).verify(token).grant.token_id
    assert token_id is not None
    return token_id
