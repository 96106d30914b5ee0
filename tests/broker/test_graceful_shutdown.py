"""SIGTERM: stop accepting, finish what is in flight within BROKER_SHUTDOWN_TIMEOUT_S, close up."""

from __future__ import annotations

import signal
import socket
import time
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import pytest

from tests.broker.conftest import CANARY_GLADIA_KEY, CANARY_SECRET_KEY, Simulator
from tests.broker.test_gateway import headers_for
from tests.support.broker_process import BrokerProcess, running_broker_process, wait_for
from tests.support.servers import RedisServer

CLOSING = "shutting down: closing the Gladia and Redis clients"


def serve_settings(simulator: Simulator, redis_url: str, shutdown_s: int) -> dict[str, str]:
    return {
        "GLADIA_API_KEY": CANARY_GLADIA_KEY,
        "GLADIA_API_URL": simulator.base_url,
        "GLADIA_TOTAL_TIMEOUT_S": "20",
        "GLADIA_READ_TIMEOUT_S": "20",
        "REDIS_URL": redis_url,
        "BROKER_SECRET_KEYS": CANARY_SECRET_KEY,
        "BROKER_PUBLIC_URL": "https://broker.example",
        "BROKER_SHUTDOWN_TIMEOUT_S": str(shutdown_s),
    }


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return False
    except OSError:
        return True


def start_slow_create(
    pool: ThreadPoolExecutor, broker: BrokerProcess, simulator: Simulator
) -> Future[httpx.Response]:
    in_flight = pool.submit(
        httpx.post,
        f"{broker.base_url}/v1/sessions",
        headers=headers_for("alice"),
        json={},
        timeout=30,
    )
    wait_for(lambda: len(simulator.calls("POST", "/v2/live")) == 1, "the create to reach Gladia")
    return in_flight


def messages(broker: BrokerProcess) -> list[str]:
    return [str(record.get("message")) for record in broker.records]


def test_a_request_in_flight_finishes_and_then_the_clients_are_closed(
    simulator: Simulator, redis_url: str, redis_server: RedisServer
) -> None:
    simulator.state.inject_fault("delay", method="POST", path="/v2/live", delay_s=1.5)
    with (
        running_broker_process(serve_settings(simulator, redis_url, shutdown_s=10)) as broker,
        ThreadPoolExecutor(1) as pool,
    ):
        in_flight = start_slow_create(pool, broker, simulator)
        broker.process.send_signal(signal.SIGTERM)
        wait_for(lambda: refuses_connections(broker.port), "the listener to close", 5)
        assert not in_flight.done(), "the request should still be waiting for Gladia"

        response = in_flight.result(timeout=10)
        assert response.status_code == 201
        # uvicorn re-raises the signal once it has shut down, so the status says what stopped it.
        assert broker.process.wait(timeout=10) == -signal.SIGTERM

    logged = messages(broker)
    created = next(i for i, m in enumerate(logged) if m.startswith("POST /v1/sessions 201"))
    assert logged.index(CLOSING) > created
    # The session it created is in Redis: the answer was not cut short before the store.
    owner_keys = redis_server.client().keys("broker:*:session:*")
    assert len(owner_keys) == 1


def test_a_request_longer_than_the_bound_does_not_hold_the_shutdown(
    simulator: Simulator, redis_url: str
) -> None:
    # Held without creating anything, and let go when the broker's connection closes, so that
    # nothing reaches the simulator after this test.
    simulator.state.inject_fault("timeout", method="POST", path="/v2/live", timeout_s=5)
    with (
        running_broker_process(serve_settings(simulator, redis_url, shutdown_s=1)) as broker,
        ThreadPoolExecutor(1) as pool,
    ):
        in_flight = start_slow_create(pool, broker, simulator)
        signalled = time.monotonic()
        broker.process.send_signal(signal.SIGTERM)
        broker.process.wait(timeout=10)
        took_s = time.monotonic() - signalled
        with pytest.raises(httpx.HTTPError):
            response = in_flight.result(timeout=10)
            response.raise_for_status()
    assert took_s < 4, f"shutdown took {took_s:.1f} s with a 1 s bound"
    wait_for(lambda: CLOSING in messages(broker), "the lifespan to close the clients", 5)
