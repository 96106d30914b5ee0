"""Schemathesis against the live broker (uvicorn, real Redis, the simulator), from the broker's
own OpenAPI document, with every check: no 5xx, answers match the schema, valid input is
accepted and invalid input refused, auth is enforced. Bounded by max_examples for CI."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from starlette.datastructures import Secret

from broker.app import create_app
from broker.identity import TokenService
from broker.openapi import build_openapi
from broker.settings import Settings
from broker.simulator import SimulatorConfig, create_simulator_app
from tests.broker.conftest import CANARIES, CANARY_GLADIA_KEY, CANARY_SECRET_KEY, CANARY_SERVICE_KEY
from tests.support.servers import RedisServer, serve_in_thread

FUZZ_SETTINGS = Settings(
    gladia_api_key=Secret(CANARY_GLADIA_KEY),
    secret_keys=(Secret(CANARY_SECRET_KEY),),
    service_keys=(Secret(CANARY_SERVICE_KEY),),
    public_url="https://broker.example",
    gladia_total_timeout_s=2.0,
    gladia_read_timeout_s=1.5,
    # The fuzzer is one user at one address: limits high enough to reach the logic behind them.
    max_live_per_subject=1_000_000,
    creates_per_minute=1_000_000,
    account_max_live=1_000_000,
    failed_attempts_per_minute=1_000_000,
)
USER_TOKEN = (
    TokenService(
        FUZZ_SETTINGS.secret_keys, FUZZ_SETTINGS.token_ttl_s, FUZZ_SETTINGS.token_max_ttl_s
    )
    .mint("fuzzer")
    .token
)
MAX_EXAMPLES = 25

schema = schemathesis.openapi.from_dict(build_openapi(FUZZ_SETTINGS))


@schema.auth()
class BrokerCredentials:
    """The service key for minting tokens, a user token everywhere else."""

    def get(self, case: Any, context: Any) -> str:
        return CANARY_SERVICE_KEY if case.operation.path == "/v1/tokens" else USER_TOKEN

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.fixture(scope="module")
def live_broker(redis_server: RedisServer) -> Iterator[str]:
    simulator = create_simulator_app(
        SimulatorConfig(api_key=CANARY_GLADIA_KEY, max_live_sessions=100_000)
    )
    with serve_in_thread(simulator) as gladia_url:
        broker_settings = Settings(
            **{
                **FUZZ_SETTINGS.__dict__,
                "gladia_api_url": gladia_url,
                "redis_url": redis_server.url,
            }
        )
        with serve_in_thread(create_app(broker_settings)) as broker_url:
            yield broker_url


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_broker_honours_its_own_openapi_document(live_broker: str, case: Any) -> None:
    response = case.call_and_validate(base_url=live_broker)
    for canary in CANARIES:
        assert canary not in response.text


def test_the_served_document_is_the_built_one(live_broker: str) -> None:
    served = httpx.get(f"{live_broker}/openapi.json")
    assert served.status_code == 200
    assert served.json() == build_openapi(FUZZ_SETTINGS)
