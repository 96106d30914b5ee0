"""`POST /v1/webhooks/gladia`: Svix / Standard Webhooks verification on the raw body, once."""

import base64
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from standardwebhooks import Webhook
from starlette.datastructures import Secret

from broker.settings import Settings
from broker.simulator import SimulatorConfig, create_simulator_app
from tests.broker.conftest import CANARY_GLADIA_KEY, Simulator
from tests.broker.events.conftest import (
    Headers,
    InProcess,
    in_process,
    redis_snapshot,
    serving,
    wait_for,
)
from tests.simulator.audio import speech
from tests.support.sdk import stream_to_created
from tests.support.servers import free_port, serve_in_thread


@pytest.fixture
def redis_topology(redis_url: str) -> tuple[str, bool]:
    """These tests read Redis directly, on the single server (the Cluster runs the rest)."""
    return redis_url, False


CURRENT = "whsec_" + base64.b64encode(b"gladia-webhook-secret-current-00").decode()
PREVIOUS = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the Svix documentation's secret
UNTRUSTED = "whsec_" + base64.b64encode(b"not-a-secret-the-broker-trusts!!").decode()
NOW = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)


@pytest.fixture
async def broker(settings: Settings) -> AsyncIterator[InProcess]:
    secrets = (Secret(CURRENT), Secret(PREVIOUS))
    async with in_process(replace(settings, gladia_webhook_secrets=secrets)) as running:
        yield running


@pytest.fixture
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def signed(
    body: bytes,
    *,
    secret: str = CURRENT,
    message_id: str = "msg_2a9Xf0",
    at: datetime = NOW,
    prefix: str = "webhook",
    signed_id: str | None = None,
) -> dict[str, str]:
    signature = Webhook(secret).sign(signed_id or message_id, at, body.decode())
    return {
        "content-type": "application/json",
        f"{prefix}-id": message_id,
        f"{prefix}-timestamp": str(int(at.timestamp())),
        f"{prefix}-signature": signature,
    }


def webhook_body(session_id: str, event: str = "live.start_recording") -> bytes:
    return json.dumps({"event": event, "payload": {"id": session_id}}).encode()


async def create(broker: InProcess, headers: dict[str, str]) -> str:
    response = await broker.client.post("/v1/sessions", headers=headers, json={})
    assert response.status_code == 201
    return str(response.json()["id"])


async def stored_events(broker: InProcess, session_id: str, headers: dict[str, str]) -> list[str]:
    response = await broker.client.get(f"/v1/sessions/{session_id}/events", headers=headers)
    return [item["event"] for item in response.json()["items"]]


async def test_a_valid_webhook_is_accepted_once(
    broker: InProcess, mint: Headers, simulator: Simulator
) -> None:
    alice = mint("alice")
    session_id = await create(broker, alice)
    body = webhook_body(session_id)
    with time_machine.travel(NOW, tick=False):
        for _ in range(3):
            answer = await broker.client.post(
                "/v1/webhooks/gladia", content=body, headers=signed(body)
            )
            assert answer.status_code == 204
    assert await stored_events(broker, session_id, alice) == ["live.start_recording"]
    view = (await broker.client.get(f"/v1/sessions/{session_id}", headers=alice)).json()
    assert view["status"] == "recording"


@pytest.mark.parametrize("prefix", ["svix", "webhook"])
async def test_the_previous_secret_and_either_header_name_still_verify(
    broker: InProcess, mint: Headers, simulator: Simulator, prefix: str
) -> None:
    alice = mint("alice")
    session_id = await create(broker, alice)
    body = webhook_body(session_id)
    with time_machine.travel(NOW, tick=False):
        headers = signed(body, secret=PREVIOUS, prefix=prefix)
        answer = await broker.client.post("/v1/webhooks/gladia", content=body, headers=headers)
    assert answer.status_code == 204
    assert await stored_events(broker, session_id, alice) == ["live.start_recording"]


def _forgeries(session_id: str) -> list[tuple[str, bytes, dict[str, str], int]]:
    body = webhook_body(session_id)
    reserialised = json.dumps(json.loads(body), separators=(",", ":")).encode()
    return [
        ("re-serialised body", reserialised, signed(body), 401),
        ("wrong secret", body, signed(body, secret=UNTRUSTED), 401),
        ("another id's signature", body, signed(body, signed_id="msg_other"), 401),
        ("six minutes old", body, signed(body, at=NOW - timedelta(minutes=6)), 401),
        ("six minutes ahead", body, signed(body, at=NOW + timedelta(minutes=6)), 401),
        ("garbage signature", body, {**signed(body), "webhook-signature": "garbage"}, 401),
        ("empty v1", body, {**signed(body), "webhook-signature": "v1,"}, 401),
        ("bad base64", body, {**signed(body), "webhook-signature": "v1,%%%"}, 401),
        ("no headers", body, {"content-type": "application/json"}, 400),
        ("no signature", body, {"webhook-id": "m", "webhook-timestamp": "1"}, 400),
        ("text timestamp", body, {**signed(body), "webhook-timestamp": "yesterday"}, 400),
        ("dotted id", body, {**signed(body), "webhook-id": "a.b"}, 400),
    ]


async def test_forged_or_malformed_webhooks_are_refused_and_store_nothing(
    broker: InProcess, mint: Headers, simulator: Simulator, redis_url: str
) -> None:
    session_id = await create(broker, mint("alice"))
    with time_machine.travel(NOW, tick=False):
        cases = _forgeries(session_id)
        before = redis_snapshot(redis_url)
        for name, body, headers, status in cases:
            answer = await broker.client.post("/v1/webhooks/gladia", content=body, headers=headers)
            assert answer.status_code == status, name
    assert redis_snapshot(redis_url) == before


async def test_a_signed_webhook_nested_too_deep_is_refused_saying_so_and_stores_nothing(
    broker: InProcess, mint: Headers, simulator: Simulator, redis_url: str, frozen: None
) -> None:
    session_id = await create(broker, mint("alice"))
    deep = '{"n":' * 100 + "{}" + "}" * 100
    body = (
        f'{{"event":"live.end_session","payload":{{"id":"{session_id}","extra":{deep}}}}}'
    ).encode()
    before = redis_snapshot(redis_url)
    answer = await broker.client.post("/v1/webhooks/gladia", content=body, headers=signed(body))
    assert answer.status_code == 400
    assert "nested deeper than" in answer.json()["detail"]
    assert redis_snapshot(redis_url) == before


async def test_the_documented_svix_vector_verifies_under_its_own_clock(
    broker: InProcess,
) -> None:
    headers = {
        "svix-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "svix-timestamp": "1614265330",
        "svix-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    body = b'{"test": 2432232314}'
    with time_machine.travel(1614265330, tick=False):
        answer = await broker.client.post("/v1/webhooks/gladia", content=body, headers=headers)
    assert answer.status_code == 204, "verified, and not about a live session: acknowledged"
    answer = await broker.client.post("/v1/webhooks/gladia", content=body, headers=headers)
    assert answer.status_code == 401, "the same delivery is too old for a real clock"


async def test_a_webhook_about_an_unknown_session_is_sent_back_twice_then_acknowledged(
    broker: InProcess, redis_url: str, frozen: None
) -> None:
    body = webhook_body("3f1c0a52-0000-4000-8000-000000000000", "live.end_session")
    statuses = [
        (await broker.client.post("/v1/webhooks/gladia", content=body, headers=signed(body)))
        for _ in range(4)
    ]
    assert [answer.status_code for answer in statuses] == [503, 503, 204, 204]
    assert statuses[0].headers["retry-after"] == "5"
    kept = {key.split(b":")[1] for key in redis_snapshot(redis_url)}
    assert kept == {b"webhook-deferred", b"webhook-message"}, "no session state was made up"


async def test_without_secrets_the_webhook_route_does_not_exist(
    settings: Settings, frozen: None
) -> None:
    async with in_process(settings) as broker:
        body = webhook_body("s")
        answer = await broker.client.post("/v1/webhooks/gladia", content=body, headers=signed(body))
        assert answer.status_code == 404


async def test_the_simulators_signed_webhooks_drive_a_session_to_its_result(
    settings: Settings, mint: Headers
) -> None:
    # Callbacks carry no lifecycle events here: status and result come from webhooks alone.
    broker_port = free_port()
    simulator_app = create_simulator_app(
        SimulatorConfig(
            api_key=CANARY_GLADIA_KEY,
            webhook_url=f"http://127.0.0.1:{broker_port}/v1/webhooks/gladia",
            webhook_secret=CURRENT,
            # start_session is sent back until the create is bound: retries 0.5 s and 1 s later.
            callback_backoff_s=0.5,
        )
    )
    with serve_in_thread(simulator_app) as simulator_url:
        configured = replace(
            settings,
            gladia_api_url=simulator_url,
            gladia_webhook_secrets=(Secret(CURRENT),),
            callback_events=("final_transcripts",),
        )
        async with serving(configured, port=broker_port) as broker:
            alice = mint("alice")
            created = (await broker.client.post("/v1/sessions", headers=alice, json={})).json()
            await stream_to_created(created, speech())

            async def done() -> bool:
                view = await broker.client.get(f"/v1/sessions/{created['id']}", headers=alice)
                return bool(view.json()["status"] == "done")

            await wait_for(done)
            events = await broker.client.get(f"/v1/sessions/{created['id']}/events", headers=alice)
            items = events.json()["items"]
            lifecycle = [(i["event"], i["source"]) for i in items if i["source"] == "webhook"]
            assert lifecycle == [
                ("live.start_session", "webhook"),
                ("live.start_recording", "webhook"),
                ("live.end_recording", "webhook"),
                ("live.end_session", "webhook"),
            ]
            assert {i["event"] for i in items if i["source"] == "callback"} == {"live.transcript"}
            gets = [
                call
                for call in simulator_app.state.simulator.calls
                if call.method == "GET" and call.path == f"/v2/live/{created['id']}"
            ]
            assert len(gets) == 1
