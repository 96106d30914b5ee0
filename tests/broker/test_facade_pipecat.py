"""Pipecat's `GladiaSTTService` through the facade: a broker user token in `X-Gladia-Key`,
`model` and `custom_metadata` by policy, the broker's own metadata never overridden.

The requests are Pipecat's own (pipecat-ai 1.14, `GladiaSTTService._setup_gladia` and
`_prepare_settings`): aiohttp, `X-Gladia-Key` alone, `?region=`, and this body.
"""

import json
from collections.abc import Callable, Iterator

import aiohttp
import httpx
import pytest

from broker.settings import Settings
from broker.web.app import create_app
from tests.broker.conftest import CANARY_GLADIA_KEY, BrokerFactory, Simulator
from tests.broker.test_facade import FAKE_REAL_KEY, assert_envelope
from tests.support.pipecat import PIPECAT_BODY
from tests.support.servers import serve_in_thread

Headers = Callable[[str], dict[str, str]]


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def in_key_header(headers: dict[str, str]) -> dict[str, str]:
    """The user's token where Pipecat puts its `api_key`."""
    return {"X-Gladia-Key": token_of(headers)}


@pytest.fixture
def broker_url(settings: Settings) -> Iterator[str]:
    with serve_in_thread(create_app(settings)) as base_url:
        yield base_url


async def test_pipecats_own_request_with_a_user_token_creates_a_session(
    broker_url: str, mint: Headers, simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    token = token_of(mint("alice"))
    # GladiaSTTService._setup_gladia, as it is written.
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{broker_url}/v2/live",
            headers={"X-Gladia-Key": token},
            json=PIPECAT_BODY,
            params={"region": "eu-west"},
        ) as response,
    ):
        assert response.ok
        created = await response.json()
    assert response.status == 201
    assert set(created) == {"id", "url", "created_at"}
    assert created["id"] in simulator.state.sessions

    (call,) = simulator.calls()
    assert call.query == "region=eu-west"
    # The broker's own key went to Gladia; the user's token went nowhere.
    assert call.headers["x-gladia-key"] == CANARY_GLADIA_KEY
    assert token not in json.dumps(call.headers) + json.dumps(call.json)
    assert call.json["model"] == "solaria-1"
    assert call.json["custom_metadata"] == {
        "broker_request_id": call.json["custom_metadata"]["broker_request_id"],
        "broker_subject": call.json["custom_metadata"]["broker_subject"],
        "client": {"pipecat": "1.14.0"},
    }
    assert not any(token in record.getMessage() for record in caplog.records)


async def test_the_token_in_x_gladia_key_opens_every_facade_route(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    alice = in_key_header(mint("alice"))
    created = (await broker.post("/v2/live", headers=alice, json=PIPECAT_BODY)).json()
    assert (await broker.get(f"/v2/live/{created['id']}", headers=alice)).status_code == 200
    listed = (await broker.get("/v2/live", headers=alice)).json()
    assert [item["id"] for item in listed["items"]] == [created["id"]]
    # Still live at Gladia: 403 as Gladia answers, past authentication.
    assert (await broker.delete(f"/v2/live/{created['id']}", headers=alice)).status_code == 403
    # Someone else's token in the same header sees none of it.
    bob = in_key_header(mint("bob"))
    assert (await broker.get(f"/v2/live/{created['id']}", headers=bob)).status_code == 404


async def test_the_broker_api_outside_the_facade_reads_authorization_only(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    response = await broker.post("/v1/sessions", headers=in_key_header(mint("alice")), json={})
    assert response.status_code == 401
    assert simulator.calls() == []


@pytest.mark.parametrize("value", ["not-a-token", "unused, x", " "])
async def test_a_wrong_token_in_x_gladia_key_is_a_401_in_gladias_envelope(
    broker: httpx.AsyncClient, simulator: Simulator, value: str
) -> None:
    response = await broker.post("/v2/live", headers={"X-Gladia-Key": value}, json=PIPECAT_BODY)
    assert assert_envelope(response, 401, "/v2/live")["message"] == "Unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"
    assert simulator.calls() == []


async def test_the_placeholder_alone_is_no_credential(
    broker: httpx.AsyncClient, simulator: Simulator
) -> None:
    response = await broker.post("/v2/live", headers={"X-Gladia-Key": "unused"}, json={})
    assert assert_envelope(response, 401, "/v2/live")["message"] == "Unauthorized"
    assert simulator.calls() == []


@pytest.mark.parametrize("with_token", [False, True])
async def test_a_gladia_api_key_is_a_401_saying_a_broker_token_is_expected(
    broker: httpx.AsyncClient,
    mint: Headers,
    simulator: Simulator,
    caplog: pytest.LogCaptureFixture,
    with_token: bool,
) -> None:
    headers = {**(mint("alice") if with_token else {}), "X-Gladia-Key": FAKE_REAL_KEY.upper()}
    for method, path in [("POST", "/v2/live"), ("GET", "/v2/live"), ("GET", "/v2/live/x")]:
        response = await broker.request(method, path, headers=headers, json=PIPECAT_BODY)
        message = assert_envelope(response, 401, path)["message"]
        assert "expects a broker user token, not a Gladia API key" in message
        assert FAKE_REAL_KEY.upper() not in response.text
    assert simulator.calls() == []
    assert any("x-gladia-key" in record.getMessage() for record in caplog.records)
    assert not any(FAKE_REAL_KEY.upper() in record.getMessage() for record in caplog.records)


async def test_a_gladia_key_behind_the_placeholder_is_refused_too(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    headers = [*mint("alice").items(), ("x-gladia-key", "unused"), ("x-gladia-key", FAKE_REAL_KEY)]
    response = await broker.post("/v2/live", headers=headers, json={})
    assert "not a Gladia API key" in assert_envelope(response, 401, "/v2/live")["message"]
    assert simulator.calls() == []


async def test_two_x_gladia_key_headers_are_a_401_never_decided_by_one(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    alice = token_of(mint("alice"))
    for second in (alice, "unused", token_of(mint("bob"))):
        headers = [("x-gladia-key", alice), ("x-gladia-key", second)]
        response = await broker.post("/v2/live", headers=headers, json={})
        assert "one X-Gladia-Key header" in assert_envelope(response, 401, "/v2/live")["message"]
    assert simulator.calls() == []


async def test_x_gladia_key_and_authorization_must_carry_the_same_token(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    alice, bob = mint("alice"), mint("bob")
    mixed = {**alice, **in_key_header(bob)}
    response = await broker.post("/v2/live", headers=mixed, json={})
    assert "carry different credentials" in assert_envelope(response, 401, "/v2/live")["message"]
    basic = {"Authorization": "Basic YTpi", **in_key_header(alice)}
    assert (await broker.post("/v2/live", headers=basic, json={})).status_code == 401
    assert simulator.calls() == []

    same = {**alice, **in_key_header(alice)}
    assert (await broker.post("/v2/live", headers=same, json={})).status_code == 201


async def test_a_model_outside_the_allowed_list_is_a_400_naming_model(
    broker: httpx.AsyncClient, broker_factory: BrokerFactory, mint: Headers, simulator: Simulator
) -> None:
    alice = in_key_header(mint("alice"))
    body = {**PIPECAT_BODY, "model": "solaria-2"}
    response = await broker.post("/v2/live", headers=alice, json=body)
    body_of_answer = assert_envelope(response, 400, "/v2/live")
    assert body_of_answer["validation_errors"] == ["model must be one of solaria-1"]
    assert simulator.calls() == []
    async with broker_factory(allowed_models=()) as locked:
        response = await locked.post("/v2/live", headers=alice, json=PIPECAT_BODY)
        assert assert_envelope(response, 400, "/v2/live")["validation_errors"] == [
            "model may not be chosen on this broker: Gladia's default is used"
        ]
    assert simulator.calls() == []


async def test_client_metadata_never_overrides_the_brokers_and_comes_back_to_its_owner(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    spoof = {"broker_request_id": "spoofed", "broker_subject": "mallory", "pipecat": "1.14.0"}
    bearer = mint("alice")
    alice = in_key_header(bearer)
    body = {**PIPECAT_BODY, "custom_metadata": spoof}
    created = (await broker.post("/v2/live", headers=alice, json=body)).json()

    (call,) = simulator.calls()
    metadata = call.json["custom_metadata"]
    assert metadata["broker_request_id"] != "spoofed"
    assert len(metadata["broker_request_id"]) == 32
    assert metadata["broker_subject"] not in ("mallory", "alice")  # the subject's hash
    assert metadata["client"] == spoof
    # The owner reads back what it sent, and never the broker's own keys.
    gladia_view = await broker.get(f"/v2/live/{created['id']}", headers=alice)
    assert gladia_view.json()["custom_metadata"] == spoof
    result = await broker.get(f"/v1/sessions/{created['id']}/result", headers=bearer)
    assert result.json()["custom_metadata"] == spoof
    listed = (await broker.get("/v2/live", headers=alice)).json()["items"]
    assert [item["custom_metadata"] for item in listed] == [spoof]


async def test_metadata_outside_the_bounds_is_a_400_naming_the_entry(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    body = {**PIPECAT_BODY, "custom_metadata": {"pipecat": "1.14.0", "call": {"id": 7}}}
    response = await broker.post("/v2/live", headers=in_key_header(mint("alice")), json=body)
    [error] = assert_envelope(response, 400, "/v2/live")["validation_errors"]
    assert error.startswith("custom_metadata.call must be a string of at most 64 characters")
    assert simulator.calls() == []


async def test_reconciliation_finds_its_own_session_beside_client_metadata(
    broker_factory: BrokerFactory, mint: Headers, simulator: Simulator
) -> None:
    # Gladia creates the session, but its answer never arrives: the outcome is unknown.
    simulator.state.inject_fault(
        "timeout_after_create", method="POST", path="/v2/live", timeout_s=5
    )
    headers = {**in_key_header(mint("alice")), "Idempotency-Key": "call-1"}
    async with broker_factory(gladia_total_timeout_s=0.5, gladia_read_timeout_s=0.4) as broker:
        timed_out = await broker.post("/v2/live", headers=headers, json=PIPECAT_BODY)
        assert timed_out.status_code == 504
        retried = await broker.post("/v2/live", headers=headers, json=PIPECAT_BODY)
        assert "new Idempotency-Key" in assert_envelope(retried, 409, "/v2/live")["message"]
    [orphan_id] = simulator.state.sessions
    assert simulator.calls("DELETE", f"/v2/live/{orphan_id}")


async def test_a_client_naming_a_pending_request_id_cannot_pass_for_its_session(
    broker_factory: BrokerFactory, mint: Headers, simulator: Simulator
) -> None:
    # Gladia holds the create without acting on it: nothing was created.
    simulator.state.inject_fault("timeout", method="POST", path="/v2/live", timeout_s=5)
    headers = {**in_key_header(mint("alice")), "Idempotency-Key": "call-1"}
    async with broker_factory(gladia_total_timeout_s=0.5, gladia_read_timeout_s=0.4) as broker:
        timed_out = await broker.post("/v2/live", headers=headers, json=PIPECAT_BODY)
        assert timed_out.status_code == 504
        [pending] = simulator.calls()
        request_id = pending.json["custom_metadata"]["broker_request_id"]
        # A session whose client metadata names that request id, as if it were the broker's.
        spoof = {**PIPECAT_BODY, "custom_metadata": {"broker_request_id": request_id}}
        decoy = await broker.post("/v2/live", headers=in_key_header(mint("alice")), json=spoof)
        assert decoy.status_code == 201

        retried = await broker.post("/v2/live", headers=headers, json=PIPECAT_BODY)
        assert retried.status_code == 201, retried.text
    # The decoy was not taken for the lost attempt: not discarded, and the create went ahead.
    assert set(simulator.state.sessions) == {decoy.json()["id"], retried.json()["id"]}
    assert simulator.calls("DELETE", f"/v2/live/{decoy.json()['id']}") == []
