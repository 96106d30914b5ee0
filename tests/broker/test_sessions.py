"""The spine: create, reconnect from any instance, list, fetch the result, delete."""

from collections.abc import Callable

import httpx

from tests.broker.conftest import BrokerFactory, Simulator

Headers = Callable[[str], dict[str, str]]


async def test_a_create_answers_only_what_the_client_needs(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    response = await broker.post("/v1/sessions", headers=mint("alice"), json={})
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    assert set(created) == {"id", "url", "created_at", "expires_at", "messages_config"}
    assert created["url"].startswith("ws://127.0.0.1:") and "token=" in created["url"]
    assert created["messages_config"] == {"receive_acknowledgments": True}
    assert simulator.state.sessions[created["id"]] is not None


async def test_the_upstream_request_is_exactly_the_allow_listed_mapping(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    body = {
        "encoding": "wav/pcm",
        "bit_depth": 16,
        "sample_rate": 48000,
        "channels": 2,
        "language_config": {"languages": ["fr"], "code_switching": False},
        "messages_config": {"receive_partial_transcripts": True},
        "region": "eu-west",
    }
    response = await broker.post("/v1/sessions", headers=mint("alice"), json=body)
    assert response.status_code == 201
    [call] = simulator.calls()
    sent = call.json
    request_id = sent["custom_metadata"]["broker_request_id"]
    assert len(request_id) == 32
    callback_url = sent["callback_config"].pop("url")
    assert callback_url.startswith("https://broker.example/v1/callbacks/")
    assert sent == {
        "encoding": "wav/pcm",
        "bit_depth": 16,
        "sample_rate": 48000,
        "channels": 2,
        "language_config": {"languages": ["fr"], "code_switching": False},
        "messages_config": {"receive_partial_transcripts": True, "receive_acknowledgments": True},
        "callback": True,
        "callback_config": {
            "receive_partial_transcripts": False,
            "receive_final_transcripts": True,
            "receive_speech_events": False,
            "receive_pre_processing_events": False,
            "receive_realtime_processing_events": True,
            "receive_post_processing_events": True,
            "receive_acknowledgments": False,
            "receive_errors": False,
            "receive_lifecycle_events": True,
        },
        "custom_metadata": {
            "broker_request_id": request_id,
            "broker_subject": sent["custom_metadata"]["broker_subject"],
        },
    }
    assert "alice" not in str(sent), "the user's id is not sent to Gladia, only its hash"
    assert call.query == "region=eu-west"


async def test_the_same_url_comes_back_from_another_instance(
    broker: httpx.AsyncClient, broker_factory: BrokerFactory, mint: Headers
) -> None:
    alice = mint("alice")
    created = (await broker.post("/v1/sessions", headers=alice, json={})).json()
    async with broker_factory() as second_instance:
        found = await second_instance.get(f"/v1/sessions/{created['id']}", headers=alice)
    assert found.status_code == 200
    assert found.headers["cache-control"] == "no-store"
    assert found.json()["url"] == created["url"]
    assert found.json()["status"] == "created"


async def test_a_lookup_answers_alike_through_its_own_lane_and_through_starlette(
    broker: httpx.AsyncClient, mint: Headers
) -> None:
    # GET is served by broker.web.lanes before routing, HEAD by the Starlette route.
    alice = mint("alice")
    created = (await broker.post("/v1/sessions", headers=alice, json={})).json()
    path = f"/v1/sessions/{created['id']}"
    got, head = await broker.get(path, headers=alice), await broker.head(path, headers=alice)
    assert (got.status_code, head.status_code) == (200, 200)
    for name in ("content-type", "content-length", "cache-control", "vary"):
        assert got.headers[name] == head.headers[name], name
    assert head.content == b""
    assert set(got.json()) == {"id", "status", "created_at", "expires_at", "messages_config", "url"}
    missing = await broker.get(path + "x", headers=alice)
    unauthenticated = await broker.get(path)
    assert (missing.status_code, unauthenticated.status_code) == (404, 401)
    for refused in (missing, unauthenticated):
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["x-request-id"]
    assert (await broker.get(path + "/", headers=alice)).status_code == 404


async def test_sessions_are_listed_newest_first_without_their_urls(
    broker: httpx.AsyncClient, mint: Headers
) -> None:
    alice = mint("alice")
    ids = [
        (await broker.post("/v1/sessions", headers=alice, json={})).json()["id"] for _ in range(5)
    ]
    first = (await broker.get("/v1/sessions", headers=alice, params={"limit": 3})).json()
    second = (
        await broker.get(
            "/v1/sessions", headers=alice, params={"limit": 3, "cursor": first["next_cursor"]}
        )
    ).json()
    assert [item["id"] for item in first["items"] + second["items"]] == ids[::-1]
    assert second["next_cursor"] is None
    assert all("url" not in item for item in first["items"] + second["items"])


async def test_a_result_hides_the_callback_url_and_the_broker_metadata(
    broker: httpx.AsyncClient, mint: Headers
) -> None:
    alice = mint("alice")
    created = (await broker.post("/v1/sessions", headers=alice, json={})).json()
    response = await broker.get(f"/v1/sessions/{created['id']}/result", headers=alice)
    assert response.status_code == 200
    result = response.json()
    assert result["id"] == created["id"]
    assert result["status"] == "queued"
    assert "custom_metadata" not in result
    assert "callback_config" not in result["request_params"]
    assert "broker_request_id" not in response.text


async def test_a_session_deleted_before_it_ended_is_refused_and_kept(
    broker: httpx.AsyncClient, mint: Headers
) -> None:
    alice = mint("alice")
    created = (await broker.post("/v1/sessions", headers=alice, json={})).json()
    response = await broker.delete(f"/v1/sessions/{created['id']}", headers=alice)
    assert response.status_code == 409
    assert (await broker.get(f"/v1/sessions/{created['id']}", headers=alice)).status_code == 200
