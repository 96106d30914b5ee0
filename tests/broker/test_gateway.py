"""Two `broker serve` processes behind the shipped nginx gateway config, sharing one real Redis.

The replicas listen on one port at two loopback addresses, and a stub DNS server gives the
gateway both for the shipped name `broker`, as compose's DNS does (tests/support/gateway.py).
"""

from __future__ import annotations

import json
import re
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

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
    GATEWAY_CONFIG,
    REPLICA_ADDRESSES,
    Nginx,
    free_replica_port,
    main_config,
    nginx_check,
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
    port = free_replica_port()
    first_address, second_address = REPLICA_ADDRESSES
    with (
        running_broker_process(first_settings, port, host=first_address) as first,
        running_broker_process(second_settings, port, host=second_address) as second,
    ):
        yield first, second
    for replica in (first, second):
        logged = "\n".join(replica.raw_lines)
        for canary in CANARIES:
            assert canary not in logged, "a secret reached a replica's log"
        assert not re.search(r"token=(?!\[redacted\])", logged), "a session URL was logged"


@pytest.fixture(scope="module")
def gateway(replicas: tuple[BrokerProcess, BrokerProcess]) -> Iterator[Nginx]:
    with running_gateway(replicas[0].port) as nginx:
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


def test_the_shipped_gateway_config_passes_nginx_t_where_its_names_do_not_resolve(
    tmp_path: Path,
) -> None:
    """The file itself, unchanged, included inside http{} as the image's conf.d include does."""
    (tmp_path / "temp").mkdir()
    config_file = tmp_path / "nginx.conf"
    config_file.write_text(main_config(tmp_path, GATEWAY_CONFIG))
    checked = nginx_check(config_file, tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr


def test_the_gateway_answers_its_own_health_check_without_any_replica() -> None:
    with (
        running_gateway(free_replica_port()) as nginx,
        httpx.Client(base_url=nginx.base_url, timeout=10) as http,
    ):
        own = http.get("/gateway/healthz")
        through = http.get("/healthz")
    assert (own.status_code, own.text) == (200, "ok\n")
    assert through.status_code == 503
    assert through.headers["content-type"] == "application/problem+json"


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

    # nginx picks one of the name's addresses at random for each request: one in two lands on
    # the other replica, and twenty all on the creator would happen once in a million runs.
    for _ in range(20):
        found = client.get(f"/v1/sessions/{session['id']}", headers=alice)
        if served_by(found, replicas)[0] != creator:
            break
    else:
        raise AssertionError("the gateway never used the other replica")
    assert found.status_code == 200
    assert found.json()["url"] == session["url"]

    for _ in range(20):
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
    seen_replicas = set()
    for _ in range(20):  # until both replicas answered (one in two for each request)
        response = client.get("/healthz", headers=spoofing)
        replica, record = served_by(response, replicas)
        assert record["client"] == CLIENT_ADDRESS
        seen_replicas.add(replica)
        if len(seen_replicas) == 2:
            break
    assert seen_replicas == {0, 1}


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
    # Whichever replica nginx would pick (one of them serves /metrics on its main port).
    for _ in range(4):
        response = client.get(path)
        assert response.status_code == 404
        assert "broker_http_requests" not in response.text


def test_metrics_are_served_on_the_metrics_port_or_else_on_the_main_port(
    replicas: tuple[BrokerProcess, BrokerProcess],
) -> None:
    own_port, main_port = replicas
    assert httpx.get(f"{own_port.base_url}/metrics").status_code == 404
    metrics_port = own_port.settings["BROKER_METRICS_PORT"]
    scraped = httpx.get(f"http://{own_port.host}:{metrics_port}/metrics")
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
        answers = [noisy.get(f"{gateway.base_url}/healthz") for _ in range(80)]
        assert quiet.get(f"{gateway.base_url}/healthz").status_code == 200
    statuses = [answer.status_code for answer in answers]
    assert statuses.count(429) > 0 and statuses[0] == 200
    # A refusal from inside the burst: a request sent after it could find a token refilled
    # (20 a second) on a slow machine.
    refused = answers[statuses.index(429)]
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


def status_of_a_declared_body(base_url: str, path: str, declared_bytes: int) -> int:
    """POST only the headers of a body of `declared_bytes`, and read the status nginx answers."""
    address = urlsplit(base_url)
    assert address.hostname is not None and address.port is not None
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared_bytes}\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(head.encode())
        with connection.makefile("rb") as answer:
            status_line = answer.readline().decode()
    return int(status_line.split()[1])


def test_the_gateways_error_log_never_holds_a_callback_capability() -> None:
    # No replica listens behind this gateway: every proxied request fails, and nginx logs it.
    with (
        running_gateway(free_replica_port()) as nginx,
        httpx.Client(base_url=nginx.base_url, timeout=10) as http,
    ):
        upstream_down = http.post("/v1/callbacks/capability-secret-upstream-down", json={})
        assert upstream_down.status_code == 503
        too_large = status_of_a_declared_body(
            nginx.base_url, "/v1/callbacks/capability-secret-too-large", 20_000_000
        )
        assert too_large == 413
        # The same failures on another route are logged: the log is written, with request lines.
        assert http.post("/v1/sessions", json={}).status_code == 503
        assert status_of_a_declared_body(nginx.base_url, "/v1/sessions", 100_000) == 413
        wait_for(
            lambda: "too large body" in nginx.error_log(), "nginx to log the oversized request"
        )
        logged = nginx.error_log()
    assert '"POST /v1/sessions HTTP/1.1"' in logged
    assert "while connecting to upstream" in logged
    assert "capability-secret" not in logged
    assert "/v1/callbacks/" not in logged


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
    port = free_replica_port()
    with (
        running_broker_process(settings, port, host=REPLICA_ADDRESSES[0]),
        running_broker_process(settings, port, host=REPLICA_ADDRESSES[1]) as second,
        running_gateway(port) as nginx,
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
