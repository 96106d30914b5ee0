"""`/v2/live` answers like Gladia: its routes, status codes and envelope, for the caller only."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.broker.conftest import BrokerFactory, Simulator

Headers = Callable[[str], dict[str, str]]
ENVELOPE_KEYS = {"timestamp", "path", "request_id", "statusCode", "message"}
FAKE_REAL_KEY = "4a39145c-2844-4557-8f34-34883f7be7d9"


def assert_envelope(response: httpx.Response, status: int, path: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert ENVELOPE_KEYS <= set(body) <= {*ENVELOPE_KEYS, "validation_errors"}
    assert body["statusCode"] == status
    assert body["path"] == path
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["timestamp"].endswith("Z")
    return body


async def test_create_answers_gladias_three_fields_and_forwards_the_region(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    response = await broker.post(
        "/v2/live", params={"region": "us-west"}, headers=mint("alice"), json={}
    )
    assert response.status_code == 201
    assert set(response.json()) == {"id", "created_at", "url"}
    assert response.headers["cache-control"] == "no-store"
    (call,) = simulator.calls()
    assert call.query == "region=us-west"
    assert "x-gladia-version" not in call.headers


async def test_a_request_without_a_token_is_a_401_in_gladias_envelope(
    broker: httpx.AsyncClient, simulator: Simulator
) -> None:
    response = await broker.post("/v2/live", json={})
    body = assert_envelope(response, 401, "/v2/live")
    assert body["message"] == "Unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"
    assert simulator.calls() == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v2/live"),
        ("GET", "/v2/live"),
        ("GET", "/v2/live/some-id"),
        ("GET", "/v2/live/some-id/file"),
        ("DELETE", "/v2/live/some-id"),
    ],
)
async def test_a_gladia_key_from_a_client_is_refused_saying_the_broker_holds_it(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator, method: str, path: str
) -> None:
    headers = {**mint("alice"), "x-gladia-key": FAKE_REAL_KEY}
    response = await broker.request(method, path, headers=headers, json={})
    body = assert_envelope(response, 401, path)
    assert "the Gladia key stays on the broker" in body["message"]
    assert FAKE_REAL_KEY not in response.text
    assert simulator.calls() == []


async def test_the_refusal_comes_before_authentication_and_never_logs_the_key(
    broker: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = await broker.post("/v2/live", headers={"x-gladia-key": FAKE_REAL_KEY}, json={})
    assert "not a Gladia API key" in assert_envelope(response, 401, "/v2/live")["message"]
    assert any("x-gladia-key" in record.getMessage() for record in caplog.records)
    assert not any(FAKE_REAL_KEY in record.getMessage() for record in caplog.records)


async def test_the_python_sdks_placeholder_key_is_let_through(
    broker: httpx.AsyncClient, mint: Headers
) -> None:
    headers = {**mint("alice"), "x-gladia-key": "unused"}
    assert (await broker.post("/v2/live", headers=headers, json={})).status_code == 201


@pytest.mark.parametrize(
    ("values", "said"),
    [
        (("unused", FAKE_REAL_KEY), "not a Gladia API key"),
        ((FAKE_REAL_KEY, "unused"), "not a Gladia API key"),
        (("unused", "unused, x"), "one X-Gladia-Key header"),
    ],
)
async def test_a_gladia_key_in_any_of_several_headers_is_refused(
    broker: httpx.AsyncClient,
    mint: Headers,
    simulator: Simulator,
    values: tuple[str, str],
    said: str,
) -> None:
    headers = [*mint("alice").items(), *(("x-gladia-key", value) for value in values)]
    for method in ("GET", "POST"):
        response = await broker.request(method, "/v2/live", headers=headers, json={})
        assert said in assert_envelope(response, 401, "/v2/live")["message"]
    assert simulator.calls() == []


async def test_the_placeholder_sent_twice_is_still_only_the_placeholder(
    broker: httpx.AsyncClient, mint: Headers
) -> None:
    headers = [*mint("alice").items(), ("x-gladia-key", "unused"), ("x-gladia-key", "unused")]
    assert (await broker.get("/v2/live", headers=headers)).status_code == 200


async def test_two_authorization_headers_are_refused_in_gladias_envelope(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    headers = [*mint("alice").items(), *mint("bob").items()]
    response = await broker.post("/v2/live", headers=headers, json={})
    assert "one Authorization header" in assert_envelope(response, 401, "/v2/live")["message"]
    assert simulator.calls() == []


async def test_two_idempotency_keys_on_the_facade_are_refused(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    headers = [*mint("alice").items(), ("idempotency-key", "key-one"), ("idempotency-key", "two")]
    response = await broker.post("/v2/live", headers=headers, json={})
    assert "Idempotency-Key" in assert_envelope(response, 400, "/v2/live")["message"]
    assert simulator.calls() == []


@pytest.mark.parametrize(
    ("body", "validation_errors"),
    [
        (
            {"callback_config": {"url": "https://evil.example"}},
            ["callback_config is set by the broker and may not be sent"],
        ),
        ({"sample_rate": 12345}, ["sample_rate must be one of 8000, 16000, 32000, 44100, 48000"]),
        (
            {"messages_config": {"receive_acknowledgments": False}},
            [
                "messages_config.receive_acknowledgments must be true: reconnecting without "
                "losing audio needs acknowledgments"
            ],
        ),
    ],
)
async def test_a_refused_config_is_a_400_with_gladias_validation_errors(
    broker: httpx.AsyncClient,
    mint: Headers,
    simulator: Simulator,
    body: dict[str, Any],
    validation_errors: list[str],
) -> None:
    response = await broker.post("/v2/live", headers=mint("alice"), json=body)
    assert assert_envelope(response, 400, "/v2/live")["validation_errors"] == validation_errors
    assert simulator.calls() == []


async def test_an_unknown_region_is_a_400_naming_it(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    response = await broker.post(
        "/v2/live", params={"region": "moon"}, headers=mint("alice"), json={}
    )
    body = assert_envelope(response, 400, "/v2/live")
    assert body["validation_errors"] == ["region must be one of us-west, eu-west"]
    assert simulator.calls() == []


async def test_gladias_own_validation_errors_are_relayed_once(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    simulator.state.inject_fault(
        "status", status=400, method="POST", path="/v2/live", message="encoding must be wav/pcm"
    )
    response = await broker.post("/v2/live", headers=mint("alice"), json={})
    body = assert_envelope(response, 400, "/v2/live")
    assert body["validation_errors"] == ["encoding must be wav/pcm"]


async def test_gladia_at_capacity_is_a_503_with_retry_after(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    simulator.state.inject_fault(
        "status", status=429, retry_after=7, method="POST", path="/v2/live"
    )
    response = await broker.post("/v2/live", headers=mint("alice"), json={})
    assert_envelope(response, 503, "/v2/live")
    assert response.headers["retry-after"] == "7"
    assert len(simulator.calls()) == 1


async def test_unknown_routes_and_methods_under_v2_answer_in_the_envelope(
    broker: httpx.AsyncClient,
) -> None:
    assert_envelope(await broker.get("/v2/nothing"), 404, "/v2/nothing")
    assert_envelope(await broker.put("/v2/live"), 405, "/v2/live")
    v1 = await broker.get("/v1/nothing")
    assert v1.headers["content-type"] == "application/problem+json"


async def test_a_session_created_on_one_surface_is_the_same_record_on_the_other(
    broker: httpx.AsyncClient, mint: Headers
) -> None:
    alice = mint("alice")
    via_v2 = (await broker.post("/v2/live", headers=alice, json={})).json()
    via_v1 = (await broker.post("/v1/sessions", headers=alice, json={})).json()

    assert (await broker.get(f"/v1/sessions/{via_v2['id']}", headers=alice)).json()[
        "url"
    ] == via_v2["url"]
    gladia_view = (await broker.get(f"/v2/live/{via_v1['id']}", headers=alice)).json()
    assert gladia_view["id"] == via_v1["id"]
    assert gladia_view["kind"] == "live"
    assert "custom_metadata" not in gladia_view

    listed_v1 = (await broker.get("/v1/sessions", headers=alice)).json()["items"]
    listed_v2 = (await broker.get("/v2/live", headers=alice)).json()["items"]
    assert [item["id"] for item in listed_v1] == [via_v1["id"], via_v2["id"]]
    assert [item["id"] for item in listed_v2] == [via_v1["id"], via_v2["id"]]


async def test_another_users_session_looks_missing_on_every_route(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    created = (await broker.post("/v2/live", headers=mint("alice"), json={})).json()
    mallory = mint("mallory")
    for method, path in [
        ("GET", f"/v2/live/{created['id']}"),
        ("GET", f"/v2/live/{created['id']}/file"),
        ("DELETE", f"/v2/live/{created['id']}"),
    ]:
        response = await broker.request(method, path, headers=mallory)
        unknown = await broker.request(method, "/v2/live/no-such-session", headers=mallory)
        assert response.status_code == unknown.status_code == 404
        assert response.json()["message"] == unknown.json()["message"]
    assert (await broker.get("/v2/live", headers=mallory)).json()["items"] == []
    assert created["id"] in simulator.state.sessions


async def test_the_list_pages_with_offset_and_limit_and_links_back_at_the_broker(
    broker: httpx.AsyncClient, mint: Headers
) -> None:
    alice = mint("alice")
    ids = [(await broker.post("/v2/live", headers=alice, json={})).json()["id"] for _ in range(3)]
    newest_first = list(reversed(ids))

    first = (await broker.get("/v2/live", headers=alice, params={"limit": 2})).json()
    assert [item["id"] for item in first["items"]] == newest_first[:2]
    assert first["first"] == "https://broker.example/v2/live?offset=0&limit=2"
    assert first["current"] == "https://broker.example/v2/live?offset=0&limit=2"
    assert first["next"] == "https://broker.example/v2/live?offset=2&limit=2"

    second = (await broker.get("/v2/live?offset=2&limit=2", headers=alice)).json()
    assert [item["id"] for item in second["items"]] == newest_first[2:]
    assert second["next"] is None


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("limit=0", ["limit"]),
        ("limit=101", ["limit"]),
        ("offset=-1", ["offset"]),
        ("status=done", ["status"]),
        ("custom_metadata%5Buser%5D=x&limit=x", ["custom_metadata[user]", "limit"]),
    ],
)
async def test_a_bad_or_unsupported_list_query_is_a_400_naming_each_parameter(
    broker: httpx.AsyncClient, mint: Headers, query: str, fields: list[str]
) -> None:
    response = await broker.get(f"/v2/live?{query}", headers=mint("alice"))
    errors = assert_envelope(response, 400, "/v2/live")["validation_errors"]
    assert [error.split(" ")[0] for error in errors] == fields


async def test_a_live_session_cannot_be_deleted_yet_as_at_gladia(
    broker: httpx.AsyncClient, mint: Headers
) -> None:
    alice = mint("alice")
    created = (await broker.post("/v2/live", headers=alice, json={})).json()
    response = await broker.delete(f"/v2/live/{created['id']}", headers=alice)
    assert_envelope(response, 403, f"/v2/live/{created['id']}")
    assert (await broker.get(f"/v1/sessions/{created['id']}", headers=alice)).status_code == 200


async def test_the_file_of_a_session_without_audio_is_a_404(
    broker: httpx.AsyncClient, mint: Headers
) -> None:
    alice = mint("alice")
    created = (await broker.post("/v2/live", headers=alice, json={})).json()
    response = await broker.get(f"/v2/live/{created['id']}/file", headers=alice)
    assert_envelope(response, 404, f"/v2/live/{created['id']}/file")


PREFLIGHT = {
    "access-control-request-method": "POST",
    "access-control-request-headers": "authorization, content-type, x-gladia-version",
}


async def test_cors_preflight_is_answered_for_a_configured_origin_only(
    broker_factory: BrokerFactory,
) -> None:
    async with broker_factory(cors_origins=("https://app.example",)) as broker:
        allowed = await broker.options(
            "/v2/live", headers={**PREFLIGHT, "origin": "https://app.example"}
        )
        other = await broker.options(
            "/v2/live", headers={**PREFLIGHT, "origin": "https://evil.example"}
        )
        simple = await broker.get("/healthz", headers={"origin": "https://evil.example"})
        simple_allowed = await broker.get("/healthz", headers={"origin": "https://app.example"})

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    allowed_headers = allowed.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "content-type", "x-gladia-version"):
        assert header in allowed_headers
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "x-gladia-key" not in allowed_headers

    assert other.status_code == 400
    assert not [name for name in other.headers if name.startswith("access-control-")]
    assert not [name for name in simple.headers if name.startswith("access-control-")]
    assert "Origin" in simple.headers["vary"]
    assert simple_allowed.headers["access-control-allow-origin"] == "https://app.example"


async def test_the_facade_shares_the_per_user_limits_with_v1(
    broker_factory: BrokerFactory, mint: Headers, simulator: Simulator
) -> None:
    alice = mint("alice")
    async with broker_factory(max_live_per_subject=1) as broker:
        assert (await broker.post("/v1/sessions", headers=alice, json={})).status_code == 201
        refused = await broker.post("/v2/live", headers=alice, json={})
    assert_envelope(refused, 429, "/v2/live")
    assert int(refused.headers["retry-after"]) >= 1
    assert len(simulator.calls()) == 1


async def test_an_idempotency_key_on_the_facade_returns_the_same_session(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    headers = {**mint("alice"), "Idempotency-Key": "create-once-1"}
    first = (await broker.post("/v2/live", headers=headers, json={})).json()
    again = (await broker.post("/v2/live", headers=headers, json={})).json()
    assert again == first
    assert len(simulator.calls()) == 1


async def test_an_address_with_too_many_misses_is_refused_in_the_envelope(
    broker_factory: BrokerFactory,
) -> None:
    async with broker_factory(failed_attempts_per_minute=2) as broker:
        for _ in range(2):
            assert (await broker.get("/v2/live")).status_code == 401
        refused = await broker.get("/v2/live")
    assert_envelope(refused, 429, "/v2/live")
