"""Strict CORS: exact origins only, never a wildcard, never credentials for a stranger."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from broker.settings import check_for_production, load_settings
from tests.broker.conftest import BrokerFactory

APP_ORIGIN = "https://app.example.com"


@pytest.fixture
async def cors_broker(broker_factory: BrokerFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with broker_factory(cors_origins=(APP_ORIGIN,)) as broker:
        yield broker


def preflight(origin: str) -> dict[str, str]:
    return {
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type, idempotency-key",
    }


async def test_a_listed_origin_may_call_with_its_own_origin_echoed(
    cors_broker: httpx.AsyncClient,
) -> None:
    response = await cors_broker.options("/v1/sessions", headers=preflight(APP_ORIGIN))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "idempotency-key" in response.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in response.headers


@pytest.mark.parametrize(
    "origin", ["https://evil.example.com", "null", "https://app.example.com.evil"]
)
async def test_any_other_origin_gets_no_cors_grant(
    cors_broker: httpx.AsyncClient, origin: str
) -> None:
    refused = await cors_broker.options("/v1/sessions", headers=preflight(origin))
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    simple = await cors_broker.get("/healthz", headers={"origin": origin})
    assert "access-control-allow-origin" not in simple.headers


async def test_without_listed_origins_no_answer_grants_anything(
    broker: httpx.AsyncClient,
) -> None:
    response = await broker.get("/healthz", headers={"origin": APP_ORIGIN})
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("origins", ["*", "https://app.example.com,*", "null"])
def test_serve_refuses_a_wildcard_or_null_origin(origins: str) -> None:
    environ = {
        "GLADIA_API_KEY": "k",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "BROKER_SECRET_KEYS": "s" * 40,
        "BROKER_PUBLIC_URL": "https://broker.example.com",
        "BROKER_CORS_ORIGINS": origins,
    }
    problems = check_for_production(load_settings(environ=environ, env_file=None))
    assert any("BROKER_CORS_ORIGINS" in problem for problem in problems)
