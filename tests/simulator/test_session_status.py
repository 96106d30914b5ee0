"""GET /v2/live/{id}: queued, then processing, then done with the result, the defaults filled in."""

from __future__ import annotations

import json

from websockets.asyncio.client import connect

from tests.simulator.audio import chunks, speech
from tests.simulator.conftest import InProcess, LiveSimulator, eventually
from tests.simulator.wsclient import converse

ALL_DEFAULTS = {
    "encoding": "wav/pcm",
    "bit_depth": 16,
    "sample_rate": 16000,
    "channels": 1,
    "model": "solaria-1",
    "endpointing": 0.05,
    "maximum_duration_without_endpointing": 5,
    "language_config": {"languages": [], "code_switching": False},
    "pre_processing": {"audio_enhancer": False, "speech_threshold": 0.6},
    "realtime_processing": {
        "custom_vocabulary": False,
        "custom_spelling": False,
        "translation": False,
        "named_entity_recognition": False,
        "sentiment_analysis": False,
    },
    "post_processing": {
        "summarization": False,
        "summarization_config": {"type": "general"},
        "chapterization": False,
    },
    "messages_config": {
        "receive_partial_transcripts": False,
        "receive_final_transcripts": True,
        "receive_speech_events": True,
        "receive_pre_processing_events": True,
        "receive_realtime_processing_events": True,
        "receive_post_processing_events": True,
        "receive_acknowledgments": True,
        "receive_errors": True,
        "receive_lifecycle_events": False,
    },
    "callback": False,
    "callback_config": {
        "receive_partial_transcripts": False,
        "receive_final_transcripts": True,
        "receive_speech_events": False,
        "receive_pre_processing_events": True,
        "receive_realtime_processing_events": True,
        "receive_post_processing_events": True,
        "receive_acknowledgments": False,
        "receive_errors": False,
        "receive_lifecycle_events": True,
    },
}


async def test_a_new_session_is_queued_with_every_default_filled_in(sim: InProcess) -> None:
    created = await sim.create({"custom_metadata": {"user": "John Doe"}})

    response = await sim.client.get(f"/v2/live/{created['id']}")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == created["id"]
    assert body["request_id"] == "G-" + created["id"][:8]
    assert body["version"] == 2
    assert body["kind"] == "live"
    assert body["status"] == "queued"
    assert body["created_at"] == created["created_at"]
    assert body["completed_at"] is None
    assert body["error_code"] is None
    assert body["custom_metadata"] == {"user": "John Doe"}
    assert body["file"] is None
    assert body["result"] is None
    assert body["request_params"] == ALL_DEFAULTS


async def test_given_values_override_defaults_and_metadata_stays_out_of_params(
    sim: InProcess,
) -> None:
    created = await sim.create(
        {
            "encoding": "wav/ulaw",
            "sample_rate": 8000,
            "channels": 2,
            "language_config": {"languages": ["fr"]},
            "messages_config": {"receive_partial_transcripts": True},
            "callback": True,
            "callback_config": {"url": "https://example.com/cb", "receive_speech_events": True},
            "custom_metadata": {"a": 1},
        }
    )

    params = (await sim.client.get(f"/v2/live/{created['id']}")).json()["request_params"]

    assert "custom_metadata" not in params
    assert (params["encoding"], params["bit_depth"], params["sample_rate"]) == ("wav/ulaw", 8, 8000)
    assert params["channels"] == 2
    assert params["language_config"]["languages"] == ["fr"]
    assert params["messages_config"]["receive_partial_transcripts"] is True
    assert params["messages_config"]["receive_final_transcripts"] is True
    assert params["callback_config"]["url"] == "https://example.com/cb"
    assert params["callback_config"]["receive_speech_events"] is True
    assert params["callback_config"]["receive_acknowledgments"] is False


async def test_an_unknown_session_is_a_404(sim: InProcess) -> None:
    response = await sim.client.get("/v2/live/00000000-0000-0000-0000-000000000000")

    assert response.status_code == 404
    assert response.json()["statusCode"] == 404


async def test_get_requires_the_key(sim: InProcess) -> None:
    created = await sim.create()

    response = await sim.client.get(f"/v2/live/{created['id']}", headers={"x-gladia-key": "bad"})

    assert response.status_code == 401


async def test_status_goes_processing_with_audio_then_done_with_the_result(
    live: LiveSimulator,
) -> None:
    created = await live.create()
    audio = speech()
    async with live.client() as client:
        conversation = await converse(created["url"], chunks(audio, 3200))
        body = (await client.get(f"/v2/live/{created['id']}")).json()

    assert conversation.close_code == 1000
    assert body["status"] == "done"
    assert body["completed_at"] >= body["created_at"]
    duration = len(audio) / 32000
    assert body["file"]["audio_duration"] == round(duration, 3)
    assert body["file"]["number_of_channels"] == 1
    result = body["result"]
    assert result["metadata"]["audio_duration"] == round(duration, 3)
    assert result["metadata"]["number_of_distinct_channels"] == 1
    assert result["metadata"]["billing_time"] == round(duration, 3)
    assert result["metadata"]["transcription_time"] >= 0
    transcription = result["transcription"]
    assert transcription["languages"] == ["en"]
    assert len(transcription["utterances"]) == 3
    assert transcription["full_transcript"] == " ".join(
        u["text"] for u in transcription["utterances"]
    )
    sent = [json.loads(m) for m in result["messages"]]
    assert [m["type"] for m in sent] == [m["type"] for m in conversation.messages]


async def test_a_session_with_audio_and_no_stop_is_processing(live: LiveSimulator) -> None:
    created = await live.create()
    session = live.state.sessions[created["id"]]
    async with connect(created["url"]) as ws, live.client() as client:
        await ws.send(speech()[:6400])
        await eventually(lambda: session.bytes_received == 6400, what="audio")
        body = (await client.get(f"/v2/live/{created['id']}")).json()

    assert body["status"] == "processing"
    assert body["file"]["audio_duration"] == 0.2
    assert body["result"] is None


async def test_billing_counts_every_channel(live: LiveSimulator) -> None:
    created = await live.create({"channels": 2})
    stereo = b"\x00\x00" * 2 * 16000

    await converse(created["url"], [stereo])

    async with live.client() as client:
        metadata = (await client.get(f"/v2/live/{created['id']}")).json()["result"]["metadata"]
    assert metadata["audio_duration"] == 1.0
    assert metadata["number_of_distinct_channels"] == 2
    assert metadata["billing_time"] == 2.0
