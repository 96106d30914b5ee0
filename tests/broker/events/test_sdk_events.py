"""The whole path: Gladia's real callbacks reach the broker while its owner streams with the SDK."""

import asyncio
from typing import Any

from broker.settings import Settings
from tests.broker.conftest import Simulator
from tests.broker.events.conftest import (
    Headers,
    follow,
    received_in,
    serving,
    wait_for,
)
from tests.simulator.audio import speech
from tests.support.sdk import stream_to_created


async def test_gladias_callbacks_arrive_in_order_as_json_and_sse_while_the_sdk_streams(
    settings: Settings, mint: Headers, simulator: Simulator
) -> None:
    async with serving(settings) as broker:
        alice = mint("alice")
        body = {"sample_rate": 16000, "messages_config": {"receive_partial_transcripts": True}}
        created = (await broker.client.post("/v1/sessions", headers=alice, json=body)).json()
        session_id = created["id"]
        url = f"/v1/sessions/{session_id}/events"
        lines: list[str] = []
        follower = asyncio.create_task(follow(broker, url, alice, lines))

        messages = await stream_to_created(created, speech())
        await asyncio.wait_for(follower, timeout=20)  # the stream ends after end_session
        streamed = received_in(lines)

        listed: list[dict[str, Any]] = []
        cursor = "0-0"
        while True:
            page = (await broker.client.get(url, headers=alice, params={"after": cursor})).json()
            listed += page["items"]
            if not page["items"]:
                break
            cursor = page["next_cursor"]

        def delivered() -> list[str]:
            return [
                d.event
                for d in simulator.state.deliveries
                if d.kind == "callback" and d.session_id == session_id and d.delivered
            ]

        async def all_settled() -> bool:
            return len(delivered()) == len(listed)

        await wait_for(all_settled)
        events = [item["event"] for item in listed]
        assert events == delivered(), "stored in the order Gladia sent them, each once"
        assert [item["id"] for item in streamed] == [item["id"] for item in listed]
        assert events[0] == "live.start_session" and events[-1] == "live.end_session"
        assert {"live.start_recording", "live.end_recording", "live.post_final_transcript"} <= set(
            events
        )

        finals = [
            m.data.utterance.text for m in messages if m.type == "transcript" and m.data.is_final
        ]
        stored = [
            item["payload"]["data"]["utterance"]["text"]
            for item in listed
            if item["event"] == "live.transcript"
        ]
        assert finals and stored == finals, "final transcripts only: the callback categories"

        async def done() -> bool:
            view = await broker.client.get(f"/v1/sessions/{session_id}", headers=alice)
            return bool(view.json()["status"] == "done")

        await wait_for(done)
        result = (await broker.client.get(f"{url.rsplit('/', 1)[0]}/result", headers=alice)).json()
        assert result["status"] == "done"
        assert len(simulator.calls("GET", f"/v2/live/{session_id}")) == 1, "fetched once, cached"
