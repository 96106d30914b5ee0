"""Two `broker serve` processes behind the project's nginx gateway, sharing one real Redis."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from broker.identity.credentials import Subject, TokenService
from broker.settings import load_settings
from tests.broker.conftest import (
    CANARIES,
    CANARY_GLADIA_KEY,
    CANARY_SECRET_KEY,
    CANARY_SERVICE_KEY,
    Simulator,
)
from tests.support.broker_process import BrokerProcess, running_broker_process, wait_for
from tests.support.gateway import (
    Nginx,
    main_config,
    nginx_check,
    render_gateway_config,
    running_gateway,
)
from tests.support.servers import RedisServer, free_port

CLIENT_ADDRESS = "127.0.0.2"
SPOOFED_ADDRESS = "203.0.113.9"


def replica_settings(
    simulator: Simulator, redis_server: RedisServer, *, metrics_port: int | None
) -> dict[str, str]:
    settings = {
        "GLADIA_API_KEY": CANARY_GLADIA_KEY,
        "GLADIA_API_URL": simulator.base_url,
        "REDIS_URL": redis_server.url,
        "BROKER_SECRET_KEYS": CANARY_SECRET_KEY,
        "BROKER_SERVICE_KEYS": CANARY_SERVICE_KEY,
        "BROKER_PUBLIC_URL": "https://broker.example",
        # The gateway connects from 127.0.0.1; clients in these tests come from 127.0.0.2+.
        "BROKER_TRUSTED_PROXIES": "127.0.0.1",
        "LOG_LEVEL": "INFO",
    }
    if metrics_port is not None:
        settings["BROKER_METRICS_PORT"] = str(metrics_port)
    return settings


@pytest.fixture(scope="module")
def replicas(
    simulator_server: Simulator, redis_server: RedisServer
) -> Iterator[tuple[BrokerProcess, BrokerProcess]]:
    # Whatever earlier modules left in the shared server (live-session leases) must not count.
    redis_server.client().flushall()
    # The first exports metrics on a port of their own; the second on its main port, which
    # the gateway must then keep to itself.
    first_settings = replica_settings(simulator_server, redis_server, metrics_port=free_port())
    second_settings = replica_settings(simulator_server, redis_server, metrics_port=None)
    with (
        running_broker_process(first_settings) as first,
        running_broker_process(second_settings) as second,
    ):
        yield first, second
    for replica in (first, second):
        logged = "\n".join(replica.raw_lines)
        for canary in CANARIES:
            assert canary not in logged, "a secret reached a replica's log"
        assert not re.search(r"token=(?!\[redacted\])", logged), "a session URL was logged"


@pytest.fixture(scope="module")
def gateway(replicas: tuple[BrokerProcess, BrokerProcess]) -> Iterator[Nginx]:
    with running_gateway((replicas[0].port, replicas[1].port)) as nginx:
        yield nginx


@pytest.fixture
def client(gateway: Nginx, simulator: Simulator) -> Iterator[httpx.Client]:
    """A client on its own loopback address, talking to the gateway."""
    transport = httpx.HTTPTransport(local_address=CLIENT_ADDRESS)
    with httpx.Client(base_url=gateway.base_url, transport=transport, timeout=10) as http:
        yield http


def headers_for(subject: str) -> dict[str, str]:
    settings = load_settings(environ={"BROKER_SECRET_KEYS": CANARY_SECRET_KEY}, env_file=None)
    tokens = TokenService(settings.secret_keys, settings.token_ttl_s, settings.token_max_ttl_s)
    return {"Authorization": f"Bearer {tokens.mint(subject).token}"}


def served_by(
    response: httpx.Response, replicas: tuple[BrokerProcess, BrokerProcess]
) -> tuple[int, dict[str, object]]:
    """Which replica answered (by the request id the gateway gave it), and its access line."""
    request_id = response.headers["x-request-id"]
    for index, replica in enumerate(replicas):
        record = replica.access_record(request_id, deadline_s=0.5)
        if record is not None:
            return index, record
    raise AssertionError(f"no replica logged request {request_id}")


def test_the_shipped_gateway_config_passes_nginx_t(tmp_path: Path) -> None:
    included = tmp_path / "broker.conf"
    included.write_text(render_gateway_config((free_port(), free_port()), free_port()))
    (tmp_path / "temp").mkdir()
    config_file = tmp_path / "nginx.conf"
    config_file.write_text(main_config(tmp_path, included))
    checked = nginx_check(config_file, tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr


def test_a_session_created_through_one_replica_is_reconnected_and_fetched_through_the_other(
    client: httpx.Client,
    replicas: tuple[BrokerProcess, BrokerProcess],
    simulator: Simulator,
) -> None:
    alice = headers_for("alice")
    created = client.post("/v1/sessions", headers=alice, json={"sample_rate": 16000})
    assert created.status_code == 201, created.text
    session = created.json()
    creator, _ = served_by(created, replicas)

    # Round robin sends the next requests to the other replica; look until one lands there.
    for _ in range(6):
        found = client.get(f"/v1/sessions/{session['id']}", headers=alice)
        if served_by(found, replicas)[0] != creator:
            break
    else:
        raise AssertionError("the gateway never used the other replica")
    assert found.status_code == 200
    assert found.json()["url"] == session["url"]

    for _ in range(6):
        result = client.get(f"/v1/sessions/{session['id']}/result", headers=alice)
        if served_by(result, replicas)[0] != creator:
            break
    else:
        raise AssertionError("the gateway never used the other replica")
    assert result.status_code == 200
    assert result.json()["id"] == session["id"]
    assert len(simulator.calls("POST", "/v2/live")) == 1


def test_the_other_replica_alone_serves_a_session_created_on_the_first(
    replicas: tuple[BrokerProcess, BrokerProcess], simulator: Simulator
) -> None:
    bob = headers_for("bob")
    first, second = replicas
    created = httpx.post(f"{first.base_url}/v1/sessions", headers=bob, json={})
    assert created.status_code == 201
    found = httpx.get(f"{second.base_url}/v1/sessions/{created.json()['id']}", headers=bob)
    assert found.status_code == 200
    assert found.json()["url"] == created.json()["url"]
    listed = httpx.get(f"{second.base_url}/v1/sessions", headers=bob)
    assert [item["id"] for item in listed.json()["items"]] == [created.json()["id"]]


def test_the_broker_sees_the_clients_address_through_the_gateway(
    client: httpx.Client, replicas: tuple[BrokerProcess, BrokerProcess]
) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    _, record = served_by(response, replicas)
    assert record["client"] == CLIENT_ADDRESS


def test_a_spoofed_forwarded_for_from_the_client_does_not_change_its_address(
    client: httpx.Client, replicas: tuple[BrokerProcess, BrokerProcess]
) -> None:
    spoofing = {
        "X-Forwarded-For": SPOOFED_ADDRESS,
        "X-Real-IP": SPOOFED_ADDRESS,
        "Forwarded": f"for={SPOOFED_ADDRESS}",
    }
    for _ in range(2):  # both replicas
        response = client.get("/healthz", headers=spoofing)
        _, record = served_by(response, replicas)
        assert record["client"] == CLIENT_ADDRESS


def test_a_caller_that_is_not_the_gateway_cannot_set_its_address(
    replicas: tuple[BrokerProcess, BrokerProcess],
) -> None:
    transport = httpx.HTTPTransport(local_address="127.0.0.3")
    with httpx.Client(transport=transport) as direct:
        response = direct.get(
            f"{replicas[0].base_url}/healthz", headers={"X-Forwarded-For": SPOOFED_ADDRESS}
        )
    _, record = served_by(response, replicas)
    assert record["client"] == "127.0.0.3"


def test_the_gateway_gives_each_request_its_own_id(
    client: httpx.Client, replicas: tuple[BrokerProcess, BrokerProcess], gateway: Nginx
) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "chosen-by-the-client"})
    request_id = response.headers["x-request-id"]
    assert request_id != "chosen-by-the-client"
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    served_by(response, replicas)
    wait_for(
        lambda: any(json.loads(line)["request_id"] == request_id for line in gateway.access_log),
        "the gateway to log the request under the id the replica logged",
    )


@pytest.mark.parametrize("path", ["/metrics", "/metrics/", "//metrics", "/%6Detrics", "/metrics?x"])
def test_metrics_are_not_reachable_through_the_gateway(client: httpx.Client, path: str) -> None:
    for _ in range(2):  # round robin: both replicas, one of which serves /metrics itself
        response = client.get(path)
        assert response.status_code == 404
        assert "broker_http_requests" not in response.text


def test_metrics_are_served_on_the_metrics_port_or_else_on_the_main_port(
    replicas: tuple[BrokerProcess, BrokerProcess],
) -> None:
    own_port, main_port = replicas
    assert httpx.get(f"{own_port.base_url}/metrics").status_code == 404
    metrics_port = own_port.settings["BROKER_METRICS_PORT"]
    scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
    assert scraped.status_code == 200
    assert "broker_http_requests_total" in scraped.text
    scraped = httpx.get(f"{main_port.base_url}/metrics")
    assert scraped.status_code == 200
    assert "broker_http_requests_total" in scraped.text


def test_the_gateway_refuses_a_body_over_the_cap_before_any_replica_sees_it(
    client: httpx.Client, replicas: tuple[BrokerProcess, BrokerProcess]
) -> None:
    before = [len(replica.access_records()) for replica in replicas]
    response = client.post(
        "/v1/sessions",
        headers={**headers_for("carol"), "content-type": "application/json"},
        content=b"{" + b" " * 100_000 + b"}",
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 413
    assert [len(replica.access_records()) for replica in replicas] == before


def test_the_gateway_limits_requests_per_client_address(gateway: Nginx) -> None:
    noisy = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.4"))
    quiet = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.5"))
    with noisy, quiet:
        statuses = [noisy.get(f"{gateway.base_url}/healthz").status_code for _ in range(80)]
        refused = noisy.get(f"{gateway.base_url}/healthz")
        assert quiet.get(f"{gateway.base_url}/healthz").status_code == 200
    assert statuses.count(429) > 0 and statuses[0] == 200
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["title"] == "Too many requests"


def test_the_gateways_log_has_no_query_string_and_no_capability(
    client: httpx.Client, gateway: Nginx
) -> None:
    client.get("/v1/sessions?token=query-secret-0123456789")
    client.post("/v1/callbacks/capability-secret-0123456789", json={})
    last = client.get("/healthz").headers["x-request-id"]  # logged after the two above

    def logged() -> str:
        return "\n".join(gateway.access_log)

    wait_for(lambda: last in logged(), "the gateway to log the requests")
    assert "query-secret" not in logged()
    assert "capability-secret" not in logged()
    assert "/v1/callbacks/[redacted]" in logged()


def test_a_replica_logs_the_hashed_subject_and_never_the_user(
    client: httpx.Client, replicas: tuple[BrokerProcess, BrokerProcess]
) -> None:
    response = client.get("/v1/sessions", headers=headers_for("dave@example.com"))
    assert response.status_code == 200
    _, record = served_by(response, replicas)
    assert record["subject"] == Subject("dave@example.com").key
    assert record["route"] == "/v1/sessions"
    for replica in replicas:
        assert not any("dave@example.com" in line for line in replica.raw_lines)


def test_when_a_replica_stops_the_other_serves_every_request_and_no_create_is_repeated(
    simulator: Simulator, redis_server: RedisServer
) -> None:
    redis_server.client().flushall()
    settings = replica_settings(simulator, redis_server, metrics_port=None)
    with (
        running_broker_process(settings) as first,
        running_broker_process(settings) as second,
        running_gateway((first.port, second.port)) as nginx,
        httpx.Client(base_url=nginx.base_url, timeout=10) as http,
    ):
        alice = headers_for("alice")
        session = http.post("/v1/sessions", headers=alice, json={}).json()
        assert second.stop() == -signal.SIGTERM  # a rolling restart takes it away

        statuses = []
        for number in range(4):
            statuses.append(http.get(f"/v1/sessions/{session['id']}", headers=alice).status_code)
            user = headers_for(f"user-{number}")  # each within its own live-session limit
            statuses.append(http.post("/v1/sessions", headers=user, json={}).status_code)
        assert statuses == [200, 201] * 4
        assert len(simulator.calls("POST", "/v2/live")) == 5
