"""`POST /v1/callbacks/{capability}`: verified, bound to its session, de-duplicated, fast."""

import asyncio
import logging
import time
import uuid
from dataclasses import replace

import httpx
import pytest
import time_machine
from starlette.datastructures import Secret

from broker.events.callbacks import CallbackBinding
from broker.identity.credentials import Subject, TokenService
from broker.settings import Settings
from tests.broker.conftest import BrokerFactory, Simulator
from tests.broker.events.conftest import (
    Headers,
    callback_body,
    capability_path,
    in_process,
    queued,
    redis_snapshot,
    serving,
    wait_for,
)
from tests.simulator.audio import speech
from tests.support.records import session_record
from tests.support.sdk import stream_to_created
from tests.support.tampering import tampered


def finish(simulator: Simulator, session_id: str) -> None:
    simulator.state.store.settle(simulator.state.sessions[session_id], "done")


async def create(broker: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await broker.post("/v1/sessions", headers=headers, json={"sample_rate": 16000})
    assert response.status_code == 201
    return str(response.json()["id"])


async def events_of(
    broker: httpx.AsyncClient, session_id: str, headers: dict[str, str]
) -> list[dict[str, object]]:
    response = await broker.get(f"/v1/sessions/{session_id}/events", headers=headers)
    assert response.status_code == 200
    return list(response.json()["items"])


async def test_a_callback_is_stored_for_its_session_and_moves_its_status(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    alice = mint("alice")
    session_id = await create(broker, alice)
    path = capability_path(simulator, session_id)
    answer = await broker.post(path, json=callback_body(session_id, "live.start_recording"))
    assert answer.status_code == 204
    [event] = await events_of(broker, session_id, alice)
    assert event["event"] == "live.start_recording" and event["source"] == "callback"
    assert event["payload"] == callback_body(session_id, "live.start_recording")["payload"]
    session = (await broker.get(f"/v1/sessions/{session_id}", headers=alice)).json()
    assert session["status"] == "recording" and "url" in session


async def test_unknown_tampered_and_foreign_capabilities_are_not_found_and_change_nothing(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator, redis_url: str
) -> None:
    alice = mint("alice")
    session_id = await create(broker, alice)
    real = capability_path(simulator, session_id).rsplit("/", 1)[1]
    tampered_capability = tampered(real)
    user_token = alice["Authorization"].split(" ", 1)[1]
    before = redis_snapshot(redis_url)
    for capability in ("unknown", "x" * 200, tampered_capability, user_token, real + "x"):
        answer = await broker.post(
            f"/v1/callbacks/{capability}", json=callback_body(session_id, "live.start_recording")
        )
        assert answer.status_code == 404, capability
    assert redis_snapshot(redis_url) == before


async def test_an_expired_capability_is_not_found(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator, settings: Settings
) -> None:
    alice = mint("alice")
    session_id = await create(broker, alice)
    path = capability_path(simulator, session_id)
    with time_machine.travel(time.time() + settings.callback_ttl_s + 5, tick=False):
        answer = await broker.post(path, json=callback_body(session_id, "live.start_recording"))
    assert answer.status_code == 404
    assert await events_of(broker, session_id, alice) == []


async def test_a_signing_key_removed_from_the_list_opens_no_callback_once_rebuilt(
    broker_factory: BrokerFactory, simulator: Simulator
) -> None:
    old_key, new_key = Secret("retiring-signing-key-" + "o" * 24), Secret("new-key-" + "n" * 32)
    alice = {"Authorization": f"Bearer {TokenService((old_key,), 600, 3600).mint('alice').token}"}
    async with broker_factory(secret_keys=(old_key,)) as before_rotation:
        created = await before_rotation.post("/v1/sessions", headers=alice, json={})
    session_id = str(created.json()["id"])
    path = capability_path(simulator, session_id)  # signed with the old key
    bodies = [
        callback_body(session_id, f"live.{name}") for name in ("start_session", "start_recording")
    ]
    async with broker_factory(secret_keys=(new_key, old_key)) as rotating:
        for body in bodies:  # verified, then answered from the verified-capability cache
            assert (await rotating.post(path, json=body)).status_code == 204
    end = callback_body(session_id, "live.end_session")
    async with broker_factory(secret_keys=(new_key,)) as rebuilt:
        assert (await rebuilt.post(path, json=end)).status_code == 404
    async with broker_factory(secret_keys=(new_key, old_key)) as still_rotating:
        assert (await still_rotating.post(path, json=end)).status_code == 204, "only the key"


async def test_a_deleted_sessions_events_go_with_it_and_its_capability_is_not_found(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator, redis_url: str
) -> None:
    alice = mint("alice")
    session_id = await create(broker, alice)
    path = capability_path(simulator, session_id)
    answer = await broker.post(path, json=callback_body(session_id, "live.start_recording"))
    assert answer.status_code == 204
    finish(simulator, session_id)  # Gladia deletes finished sessions only
    assert (await broker.delete(f"/v1/sessions/{session_id}", headers=alice)).status_code == 204
    left = [key for key in redis_snapshot(redis_url) if session_id.encode() in key]
    assert [key for key in left if b":callback:" not in key] == []
    answer = await broker.post(path, json=callback_body(session_id, "live.end_session"))
    assert answer.status_code == 404


async def test_a_body_naming_another_session_is_refused_and_changes_nothing(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator, redis_url: str
) -> None:
    alice = mint("alice")
    first, second = await create(broker, alice), await create(broker, alice)
    bobs = await create(broker, mint("bob"))
    before = redis_snapshot(redis_url)
    # Another session of the capability's owner is refused as not this capability's; one the
    # owner has no record of (bob's, or none) is unknown from where the capability stands.
    for other, status in ((second, 400), (bobs, 404), ("not-a-session", 404)):
        answer = await broker.post(
            capability_path(simulator, first), json=callback_body(other, "live.end_session")
        )
        assert answer.status_code == status
        assert answer.headers["content-type"] == "application/problem+json"
    assert redis_snapshot(redis_url) == before


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"{not json", 400),
        (b'{"id": 1, "event": "live.transcript", "payload": {}}', 400),
        (b'{"id": "x", "event": "live.nope", "payload": {}}', 400),
        (b"[" * 50_000, 400),
    ],
)
async def test_a_malformed_callback_is_a_bad_request(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator, content: bytes, status: int
) -> None:
    session_id = await create(broker, mint("alice"))
    answer = await broker.post(capability_path(simulator, session_id), content=content)
    assert answer.status_code == status


async def test_a_callback_nested_a_thousand_levels_is_refused_and_the_history_still_reads(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    alice = mint("alice")
    session_id = await create(broker, alice)
    path = capability_path(simulator, session_id)
    assert (
        await broker.post(path, json=callback_body(session_id, "live.start_recording"))
    ).status_code == 204
    deep = '{"n":' * 1000 + "{}" + "}" * 1000  # about 6 KB
    content = (
        f'{{"id":"{session_id}","event":"live.transcript","payload":{{"type":"transcript",'
        f'"data":{deep}}}}}'
    ).encode()
    answer = await broker.post(path, content=content, headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert "nested deeper than" in answer.json()["detail"]
    events = await events_of(broker, session_id, alice)
    assert [event["event"] for event in events] == ["live.start_recording"]


async def test_an_oversized_callback_is_refused_before_it_is_read(
    broker_factory: BrokerFactory, mint: Headers, simulator: Simulator
) -> None:
    async with broker_factory(callback_max_body_bytes=2048) as broker:
        alice = mint("alice")
        session_id = await create(broker, alice)
        body = callback_body(session_id, "live.transcript", text="x" * 4096)
        answer = await broker.post(capability_path(simulator, session_id), json=body)
        assert answer.status_code == 413
        assert await events_of(broker, session_id, alice) == []


async def test_the_same_delivery_replayed_is_stored_once(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    alice = mint("alice")
    session_id = await create(broker, alice)
    path = capability_path(simulator, session_id)
    final = callback_body(session_id, "live.transcript", id="u1", is_final=True)
    for _ in range(3):
        assert (await broker.post(path, json=final)).status_code == 204
    # The same content re-serialised differently is the same delivery too.
    reordered = {"payload": dict(reversed(final["payload"].items())), **final}
    assert (await broker.post(path, json=reordered)).status_code == 204
    assert [e["event"] for e in await events_of(broker, session_id, alice)] == ["live.transcript"]


async def test_a_hundred_identical_deliveries_in_parallel_store_once_and_fetch_the_result_once(
    settings: Settings, mint: Headers, simulator: Simulator, redis_url: str
) -> None:
    async def nothing_queued(url: str) -> bool:
        return queued(url, "result-fetch") == 0

    # Lifecycle callbacks off: the only end_session is the hundred copies below.
    async with serving(replace(settings, callback_events=("final_transcripts",))) as broker:
        alice = mint("alice")
        created = (await broker.client.post("/v1/sessions", headers=alice, json={})).json()
        await stream_to_created(created, speech())
        assert simulator.state.sessions[created["id"]].status == "done"
        path = capability_path(simulator, created["id"])
        end = callback_body(created["id"], "live.end_session")
        answers = await asyncio.gather(*(broker.client.post(path, json=end) for _ in range(100)))
        assert {answer.status_code for answer in answers} == {204}

        async def settled() -> bool:
            view = (await broker.client.get(f"/v1/sessions/{created['id']}", headers=alice)).json()
            return bool(view["status"] == "done")

        await wait_for(settled)
        await wait_for(lambda: nothing_queued(redis_url))
        events = await events_of(broker.client, created["id"], alice)
        assert [e["event"] for e in events].count("live.end_session") == 1
        assert len(simulator.calls("GET", f"/v2/live/{created['id']}")) == 1
        result = await broker.client.get(f"/v1/sessions/{created['id']}/result", headers=alice)
        assert result.json()["status"] == "done"
        assert "callback" not in result.text
        assert len(simulator.calls("GET", f"/v2/live/{created['id']}")) == 1


async def test_callbacks_that_beat_the_create_answer_are_kept_until_it_lands(
    settings: Settings, mint: Headers
) -> None:
    async with in_process(settings) as broker:
        found = broker.resources
        subject = Subject("alice")
        request_id = uuid.uuid4().hex
        path = "/v1/callbacks/" + found.capabilities.mint(CallbackBinding(subject.key, request_id))
        early = callback_body("sess-early", "live.start_session")
        forged = callback_body("someone-else", "live.transcript", id="u0", is_final=True)
        # The create is admitted, and Gladia's answer has not reached the broker yet: the
        # session id is unknown.
        await found.limits.admit(subject.key, request_id)
        assert (await broker.client.post(path, json=early)).status_code == 202
        assert (await broker.client.post(path, json=forged)).status_code == 202

        record = session_record(
            "sess-early", subject.key, request_id, url="ws://gladia.test/v2/live?token=t"
        )
        # What a create does once Gladia answers: write everything, then take the early ones.
        await found.creator.keep(record, subject)
        later = callback_body("sess-early", "live.start_recording")
        assert (await broker.client.post(path, json=later)).status_code == 204
        assert (await broker.client.post(path, json=forged)).status_code == 404

        events = await events_of(broker.client, "sess-early", mint("alice"))
        assert [e["event"] for e in events] == ["live.start_session", "live.start_recording"]


async def test_the_capability_is_never_logged_and_never_returned(
    broker: httpx.AsyncClient,
    mint: Headers,
    simulator: Simulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    alice = mint("alice")
    session_id = await create(broker, alice)
    path = capability_path(simulator, session_id)
    capability = path.rsplit("/", 1)[1]
    await broker.post(path, json=callback_body(session_id, "live.start_recording"))
    await broker.post(path, content=b"{broken")
    logging.getLogger("broker.test").warning("posting to %s failed", f"https://x{path}")
    routes = [getattr(r, "fields", {}).get("route") for r in caplog.records]
    assert "/v1/callbacks/{capability}" in routes
    assert all(capability not in r.getMessage() for r in caplog.records)
    finish(simulator, session_id)
    result = await broker.get(f"/v1/sessions/{session_id}/result", headers=alice)
    assert result.status_code == 200 and capability not in result.text
    listing = await broker.get(f"/v1/sessions/{session_id}/events", headers=alice)
    assert capability not in listing.text
