"""`GET /v1/sessions/{id}/events`: the owner's history, as JSON pages or server-sent events."""

import asyncio
import json
from dataclasses import replace
from typing import Any

import httpx
from redis.asyncio import Redis, RedisCluster
from redis.typing import EncodableT, FieldT

from broker.identity.credentials import Subject
from broker.settings import Settings
from broker.store.keys import event_stream_key
from tests.broker.conftest import Simulator
from tests.broker.events.conftest import (
    Headers,
    callback_body,
    capability_path,
    follow,
    received_in,
    serving,
)

TRANSCRIPTS = [f"u{number}" for number in range(5)]


async def session_with_events(
    client: httpx.AsyncClient, simulator: Simulator, headers: dict[str, str], *, end: bool
) -> str:
    session_id = str((await client.post("/v1/sessions", headers=headers, json={})).json()["id"])
    path = capability_path(simulator, session_id)
    bodies = [callback_body(session_id, "live.start_recording")]
    bodies += [
        callback_body(session_id, "live.transcript", id=u, is_final=True) for u in TRANSCRIPTS
    ]
    if end:
        bodies.append(callback_body(session_id, "live.end_session"))
    for body in bodies:
        assert (await client.post(path, json=body)).status_code == 204
    return session_id


def parse_sse(text: str) -> list[dict[str, Any]]:
    """The data events of an SSE body (comments, i.e. heartbeats, are skipped)."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            if name in ("id", "data"):
                fields[name] = value.removeprefix(" ")
        if "data" in fields:
            events.append({"sse_id": fields.get("id"), **json.loads(fields["data"])})
    return events


def labels(items: list[dict[str, Any]]) -> list[str]:
    return [
        item["payload"].get("data", {}).get("id") or item["event"].removeprefix("live.")
        for item in items
    ]


async def test_events_come_in_order_with_a_cursor(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    alice = mint("alice")
    session_id = await session_with_events(broker, simulator, alice, end=False)
    url = f"/v1/sessions/{session_id}/events"
    first = await broker.get(url, headers=alice, params={"limit": 2})
    assert first.status_code == 200 and first.headers["cache-control"] == "no-store"
    page = first.json()
    assert labels(page["items"]) == ["start_recording", "u0"]
    assert page["ended"] is False
    rest = (await broker.get(url, headers=alice, params={"after": page["next_cursor"]})).json()
    assert labels(rest["items"]) == ["u1", "u2", "u3", "u4"]
    empty = (await broker.get(url, headers=alice, params={"after": rest["next_cursor"]})).json()
    assert empty["items"] == [] and empty["next_cursor"] == rest["next_cursor"]


async def test_another_users_events_look_missing(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    session_id = await session_with_events(broker, simulator, mint("alice"), end=False)
    url = f"/v1/sessions/{session_id}/events"
    assert (await broker.get(url, headers=mint("bob"))).status_code == 404
    assert (await broker.get(url)).status_code == 401
    sse = {"accept": "text/event-stream", **mint("bob")}
    assert (await broker.get(url, headers=sse)).status_code == 404


async def test_a_cursor_this_api_did_not_return_is_a_bad_request(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    alice = mint("alice")
    session_id = await session_with_events(broker, simulator, alice, end=False)
    url = f"/v1/sessions/{session_id}/events"
    for params in ({"after": "yesterday"}, {"after": "1-2-3"}, {"limit": "0"}, {"limit": "x"}):
        assert (await broker.get(url, headers=alice, params=params)).status_code == 400
    headers = {"accept": "text/event-stream", "last-event-id": "nope", **alice}
    assert (await broker.get(url, headers=headers)).status_code == 400


async def test_server_sent_events_replay_the_history_and_end_after_end_session(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator
) -> None:
    alice = mint("alice")
    session_id = await session_with_events(broker, simulator, alice, end=True)
    url = f"/v1/sessions/{session_id}/events"
    stream = await broker.get(url, headers={"accept": "text/event-stream", **alice})
    assert stream.status_code == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.headers["cache-control"] == "no-store"
    events = parse_sse(stream.text)
    assert labels(events) == ["start_recording", *TRANSCRIPTS, "end_session"]
    assert [event["sse_id"] for event in events] == [event["id"] for event in events]

    resumed = await broker.get(
        url,
        headers={"accept": "text/event-stream", "last-event-id": events[3]["id"], **alice},
    )
    assert labels(parse_sse(resumed.text)) == ["u3", "u4", "end_session"]
    after_end = await broker.get(
        url,
        headers={"accept": "text/event-stream", "last-event-id": events[-1]["id"], **alice},
    )
    assert parse_sse(after_end.text) == [], "a stream resumed after the end ends at once"
    listed = (await broker.get(url, headers=alice)).json()
    assert listed["ended"] is True


async def test_a_live_stream_delivers_events_as_they_arrive_with_heartbeats(
    settings: Settings, mint: Headers, simulator: Simulator
) -> None:
    async with serving(settings) as broker:
        alice = mint("alice")
        created = await broker.client.post("/v1/sessions", headers=alice, json={})
        session_id = created.json()["id"]
        path = capability_path(simulator, session_id)
        lines: list[str] = []
        follower = asyncio.create_task(
            follow(broker, f"/v1/sessions/{session_id}/events", alice, lines)
        )
        for utterance in TRANSCRIPTS:
            body = callback_body(session_id, "live.transcript", id=utterance, is_final=True)
            assert (await broker.client.post(path, json=body)).status_code == 204
            await until(lambda u=utterance: u in labels(received_in(lines)))
        await until(lambda: any(line.startswith(":") for line in lines))  # a heartbeat
        end = callback_body(session_id, "live.end_session")
        assert (await broker.client.post(path, json=end)).status_code == 204
        await asyncio.wait_for(follower, timeout=10)
        # Gladia's own start_session callback arrives too, whenever its delivery lands.
        received = labels(received_in(lines))
        assert [label for label in received if label != "start_session"] == [
            *TRANSCRIPTS,
            "end_session",
        ]


async def test_event_streams_beyond_the_cap_are_refused_with_retry_after(
    settings: Settings, mint: Headers, simulator: Simulator
) -> None:
    async with serving(replace(settings, sse_max_streams=1)) as broker:
        alice = mint("alice")
        session_id = (await broker.client.post("/v1/sessions", headers=alice, json={})).json()["id"]
        url = f"/v1/sessions/{session_id}/events"
        lines: list[str] = []
        follower = asyncio.create_task(follow(broker, url, alice, lines))
        await until(lambda: any(line.startswith(":") for line in lines))
        refused = await broker.client.get(url, headers={"accept": "text/event-stream", **alice})
        assert refused.status_code == 503 and "retry-after" in refused.headers
        path = capability_path(simulator, session_id)
        end = callback_body(session_id, "live.end_session")
        assert (await broker.client.post(path, json=end)).status_code == 204
        await asyncio.wait_for(follower, timeout=10)
        again = await broker.client.get(url, headers={"accept": "text/event-stream", **alice})
        assert again.status_code == 200, "the slot was given back when the stream ended"


async def append_straight_to_redis(
    settings: Settings, owner: str, session_id: str, payload_json: str
) -> None:
    """An entry in the session's stream as the store's script writes one, bypassing intake."""
    assert settings.redis_url is not None
    client: Redis | RedisCluster
    if settings.redis_cluster:
        client = RedisCluster.from_url(settings.redis_url)
    else:
        client = Redis.from_url(settings.redis_url)
    fields: dict[FieldT, EncodableT] = {
        "event": "live.transcript",
        "source": "callback",
        "received_at": "2026-11-25T10:00:00.000Z",
        "payload": payload_json,
    }
    try:
        await client.xadd(event_stream_key(owner, session_id), fields)
    finally:
        await client.aclose()


async def test_a_stored_entry_too_deep_to_render_is_given_as_its_stored_text(
    broker: httpx.AsyncClient, mint: Headers, simulator: Simulator, settings: Settings
) -> None:
    alice = mint("alice")
    session_id = str((await broker.post("/v1/sessions", headers=alice, json={})).json()["id"])
    path = capability_path(simulator, session_id)
    assert (
        await broker.post(path, json=callback_body(session_id, "live.start_recording"))
    ).status_code == 204
    # Stored before intake bounded nesting: about 6 KB, a thousand levels deep.
    deep = '{"type":"transcript","data":' + '{"n":' * 1000 + "{}" + "}" * 1000 + "}"
    await append_straight_to_redis(settings, Subject("alice").key, session_id, deep)
    assert (
        await broker.post(path, json=callback_body(session_id, "live.end_session"))
    ).status_code == 204
    url = f"/v1/sessions/{session_id}/events"
    for _ in range(2):  # every call, not only the first
        page = await broker.get(url, headers=alice)
        assert page.status_code == 200
        items = page.json()["items"]
        assert [item["event"] for item in items] == [
            "live.start_recording",
            "live.transcript",
            "live.end_session",
        ]
        assert items[1]["payload"] == deep
        assert items[0]["payload"]["type"] == "start_recording"
    stream = await broker.get(url, headers={"accept": "text/event-stream", **alice})
    assert stream.status_code == 200
    assert [event["payload"] == deep for event in parse_sse(stream.text)] == [False, True, False]


async def until(condition: Any, timeout_s: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.02)
