"""`jwt` and `gateway` identity through the whole broker, over real loopback sockets."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from broker.settings import Settings
from broker.web.app import create_app
from tests.broker.conftest import BrokerFactory, Simulator
from tests.support.servers import serve_in_thread

ISSUER = "https://id.example.com/"
AUDIENCE = "gladia-broker"
SIGNING_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
FORGER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class IdentityProvider:
    jwks_url: str
    fetches: list[float]


@pytest.fixture(scope="module")
def identity_provider() -> Iterator[IdentityProvider]:
    fetches: list[float] = []
    jwk = {**RSAAlgorithm.to_jwk(SIGNING_KEY.public_key(), as_dict=True), "kid": "k1"}

    async def jwks(request: Request) -> JSONResponse:
        fetches.append(time.monotonic())
        return JSONResponse({"keys": [jwk]})

    app = Starlette(routes=[Route("/jwks.json", jwks)])
    with serve_in_thread(app) as base_url:
        yield IdentityProvider(f"{base_url}/jwks.json", fetches)


@pytest.fixture
def jwt_settings(settings: Settings, identity_provider: IdentityProvider) -> Settings:
    identity_provider.fetches.clear()
    return replace(
        settings,
        auth_modes=("token", "jwt"),
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwt_jwks_url=identity_provider.jwks_url,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def id_token(key: Any = SIGNING_KEY, kid: str = "k1", **changes: Any) -> str:
    now = int(time.time())
    claims = {"sub": "idp-user-7", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300}
    claims.update(changes)
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


async def test_an_id_token_from_the_provider_creates_a_session_for_its_subject(
    broker_factory: BrokerFactory,
    jwt_settings: Settings,
    identity_provider: IdentityProvider,
    simulator: Simulator,
) -> None:
    async with broker_factory(**_changes(jwt_settings)) as broker:
        created = await broker.post("/v1/sessions", headers=bearer(id_token()), json={})
        assert created.status_code == 201
        again = await broker.get(f"/v1/sessions/{created.json()['id']}", headers=bearer(id_token()))
        assert again.status_code == 200
        other = bearer(id_token(sub="someone-else"))
        assert (
            await broker.get(f"/v1/sessions/{created.json()['id']}", headers=other)
        ).status_code == 404
    assert len(identity_provider.fetches) == 1


@pytest.mark.parametrize(
    "token",
    [
        id_token(aud="another-service"),
        id_token(iss="https://evil.example.com/"),
        id_token(exp=int(time.time()) - 600),
        id_token(exp=None),
        id_token(key=FORGER_KEY),
        id_token(key=FORGER_KEY, kid="unknown"),
    ],
    ids=["wrong-aud", "wrong-iss", "expired", "no-exp", "forged", "unknown-kid"],
)
async def test_bad_id_tokens_are_401_with_at_most_one_refetch(
    broker_factory: BrokerFactory,
    jwt_settings: Settings,
    identity_provider: IdentityProvider,
    simulator: Simulator,
    token: str,
) -> None:
    async with broker_factory(**_changes(jwt_settings)) as broker:
        response = await broker.post("/v1/sessions", headers=bearer(token), json={})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert len(identity_provider.fetches) <= 2
    assert simulator.calls() == []


async def test_broker_tokens_still_work_beside_id_tokens(
    broker_factory: BrokerFactory, jwt_settings: Settings, mint: Any
) -> None:
    async with broker_factory(**_changes(jwt_settings)) as broker:
        assert (
            await broker.post("/v1/sessions", headers=mint("alice"), json={})
        ).status_code == 201


async def test_a_subject_revocation_refuses_id_tokens_issued_until_then(
    broker_factory: BrokerFactory, jwt_settings: Settings, identity_provider: IdentityProvider
) -> None:
    from tests.broker.conftest import CANARY_SERVICE_KEY

    now = int(time.time())
    earlier, later = id_token(iat=now - 20, jti="id-1"), id_token(iat=now)
    async with broker_factory(**_changes(jwt_settings)) as broker:
        assert (await broker.get("/v1/sessions", headers=bearer(earlier))).status_code == 200
        revoked = await broker.post(
            "/v1/subjects/idp-user-7/revoke",
            headers=bearer(CANARY_SERVICE_KEY),
            json={"not_before": now - 10},
        )
        assert revoked.status_code == 200
        refused = await broker.get("/v1/sessions", headers=bearer(earlier))
        assert refused.status_code == 401
        assert refused.json()["reason"] == "subject_revoked"
        assert (await broker.get("/v1/sessions", headers=bearer(later))).status_code == 200
        # Without `iat` an id token has no issue time to compare: not-before cannot refuse it.
        undated = id_token(iat=None)
        assert (await broker.get("/v1/sessions", headers=bearer(undated))).status_code == 200


def _changes(settings: Settings) -> dict[str, Any]:
    return {
        "auth_modes": settings.auth_modes,
        "jwt_issuer": settings.jwt_issuer,
        "jwt_audience": settings.jwt_audience,
        "jwt_jwks_url": settings.jwt_jwks_url,
    }


@pytest.fixture
def gateway_settings(settings: Settings) -> Settings:
    return replace(settings, auth_modes=("gateway",), gateway_user_header="x-user-id")


def test_the_gateway_header_is_believed_only_from_a_trusted_proxy(
    gateway_settings: Settings, simulator: Simulator
) -> None:
    # Over a real socket the peer is 127.0.0.1: trusted in one broker, not in the other.
    trusted = replace(gateway_settings, trusted_proxies=("127.0.0.0/8",))
    untrusted = replace(gateway_settings, trusted_proxies=("10.0.0.0/8",))
    headers = {"x-user-id": "gw-user", "content-type": "application/json"}
    with serve_in_thread(create_app(trusted), proxy_headers=False) as base_url:
        created = httpx.post(f"{base_url}/v1/sessions", headers=headers, content="{}")
    assert created.status_code == 201
    with serve_in_thread(create_app(untrusted), proxy_headers=False) as base_url:
        refused = httpx.post(f"{base_url}/v1/sessions", headers=headers, content="{}")
        # Posing as the gateway with X-Forwarded-For changes nothing: the TCP peer decides.
        spoofed = httpx.post(
            f"{base_url}/v1/sessions",
            headers={**headers, "x-forwarded-for": "10.0.0.1"},
            content="{}",
        )
    assert (refused.status_code, spoofed.status_code) == (401, 401)
    assert len(simulator.calls()) == 1


def test_behind_a_trusted_proxy_the_client_address_comes_from_x_forwarded_for(
    gateway_settings: Settings,
) -> None:
    # Misses are counted per client, not per gateway: one client's guesses do not block others.
    settings = replace(
        gateway_settings, trusted_proxies=("127.0.0.0/8",), failed_attempts_per_minute=2
    )
    with serve_in_thread(create_app(settings), proxy_headers=False) as base_url:

        def get(client: str, user: str) -> int:
            headers = {"x-forwarded-for": client, "x-user-id": user}
            return httpx.get(f"{base_url}/v1/sessions/nope", headers=headers).status_code

        assert [get("203.0.113.7", "alice") for _ in range(3)] == [404, 404, 429]
        assert get("203.0.113.8", "bob") == 404
