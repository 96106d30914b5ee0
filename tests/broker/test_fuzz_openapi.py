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
from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.datastructures import Secret

from broker.identity.credentials import TokenService
from broker.settings import Settings
from broker.web.openapi import build_openapi
from tests.bench.processes import start_python
from tests.broker.conftest import CANARIES, CANARY_GLADIA_KEY, CANARY_SECRET_KEY, CANARY_SERVICE_KEY
from tests.support.servers import RedisServer, free_port

# What the live broker runs with (passed to `broker serve` as its environment below).
FUZZ_SETTINGS = Settings(
    gladia_api_key=Secret(CANARY_GLADIA_KEY),
    secret_keys=(Secret(CANARY_SECRET_KEY),),
    service_keys=(Secret(CANARY_SERVICE_KEY),),
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
# Operations with rules OpenAPI cannot state, and the parameter a schema-valid request breaking
# one is refused (400 or 422) for: GET /v1/usage's `from` is at most 30 days before `to`, never
# after it, and a service key must name `sub` (tests/broker/test_usage.py tests the rules);
# a subject's `not_before` is at most BROKER_TOKEN_MAX_TTL_S from now (test_revocation.py).
BEYOND_THE_SCHEMA = {
    ("GET", "/v1/usage"): ({"from"}, {"sub"}),
    ("POST", "/v1/subjects/{sub}/revoke"): ({"not_before"},),
}

schema = schemathesis.openapi.from_dict(build_openapi(FUZZ_SETTINGS))


@schema.auth()
class BrokerCredentials:
    """The service key for minting tokens, a user token everywhere else."""

    def get(self, case: Any, context: Any) -> str:
        return CANARY_SERVICE_KEY if case.operation.path == "/v1/tokens" else USER_TOKEN

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.fixture(scope="module")
def live_broker(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`broker serve` and the simulator, each its own process (as deployed), on loopback."""
    run_dir = tmp_path_factory.mktemp("fuzz")
    simulator_port, broker_port = free_port(), free_port()
    simulator = start_python(
        "simulator",
        ["-m", "broker.simulator.standalone", "--port", str(simulator_port),
         f"--api-key={CANARY_GLADIA_KEY}", "--max-live-sessions", "100000"],
        {},
        run_dir,
        base_url=f"http://127.0.0.1:{simulator_port}",
    )  # fmt: skip
    broker_url = f"http://127.0.0.1:{broker_port}"
    broker = start_python(
        "broker",
        ["-m", "broker", "serve", "--host", "127.0.0.1", "--port", str(broker_port)],
        {
            "GLADIA_API_KEY": CANARY_GLADIA_KEY,
            "GLADIA_API_URL": simulator.base_url or "",
            "REDIS_URL": redis_server.url,
            "BROKER_SECRET_KEYS": CANARY_SECRET_KEY,
            "BROKER_SERVICE_KEYS": CANARY_SERVICE_KEY,
            # Gladia's callbacks come back to this broker: nothing leaves the machine.
            "BROKER_PUBLIC_URL": broker_url,
            "BROKER_MAX_LIVE_PER_SUBJECT": str(FUZZ_SETTINGS.max_live_per_subject),
            "BROKER_CREATES_PER_MINUTE": str(FUZZ_SETTINGS.creates_per_minute),
            "BROKER_ACCOUNT_MAX_LIVE": str(FUZZ_SETTINGS.account_max_live),
            "BROKER_FAILED_ATTEMPTS_PER_MINUTE": str(FUZZ_SETTINGS.failed_attempts_per_minute),
            "LOG_LEVEL": "WARNING",
        },
        run_dir,
        base_url=broker_url,
    )
    try:
        simulator.wait_http("/v2/live", status=401)
        broker.wait_http("/readyz")
        yield broker_url
    finally:
        broker.stop()
        simulator.stop()
        log = broker.log_path.read_text(errors="replace")
        for canary in CANARIES:
            assert canary not in log, "a secret reached the broker's log"


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_broker_honours_its_own_openapi_document(live_broker: str, case: Any) -> None:
    named = BEYOND_THE_SCHEMA.get((case.method.upper(), case.operation.path))
    excluded = [positive_data_acceptance] if named else []
    response = case.call_and_validate(base_url=live_broker, excluded_checks=excluded)
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if named and positive and response.status_code in (400, 422):
        assert {problem["field"] for problem in response.json()["errors"]} in named
    for canary in CANARIES:
        assert canary not in response.text


def test_the_served_document_is_the_built_one(live_broker: str) -> None:
    served = httpx.get(f"{live_broker}/openapi.json")
    assert served.status_code == 200
    assert served.json() == build_openapi(FUZZ_SETTINGS)
