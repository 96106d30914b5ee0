"""The live socket: token auth, acknowledgments, transcripts, the stop sequence, message gating."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from broker.simulator.validation import FLAGS
from tests.simulator.audio import chunks, silence_pcm16, speech
from tests.simulator.conftest import LiveSimulator
from tests.simulator.wsclient import converse

PARTIALS_AND_LIFECYCLE = {
    "receive_partial_transcripts": True,
    "receive_lifecycle_events": True,
}
ALL_OFF = dict.fromkeys(FLAGS, False)


def _socket_url(live: LiveSimulator, token: str) -> str:
    return live.base_url.replace("http://", "ws://") + f"/v2/live?token={token}"


@pytest.mark.parametrize("token", ["", "not-a-token"])
async def test_an_unknown_token_is_refused_with_403_on_the_upgrade(
    live: LiveSimulator, token: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(_socket_url(live, token)):
            pass

    assert refused.value.response.status_code == 403


async def test_the_session_id_is_not_a_socket_credential(live: LiveSimulator) -> None:
    created = await live.create()

    with pytest.raises(InvalidStatus):
        async with connect(_socket_url(live, created["id"])):
            pass


async def test_each_binary_chunk_is_acknowledged_with_cumulative_ranges(
    live: LiveSimulator,
) -> None:
    created = await live.create()

    conversation = await converse(created["url"], [b"\x00" * 3200, b"\x00" * 1600, b"\x00" * 4800])

    acks = conversation.of_type("audio_chunk")
    assert [a["data"]["byte_range"] for a in acks] == [[0, 3200], [3200, 4800], [4800, 9600]]
    assert [a["data"]["time_range"] for a in acks] == [[0.0, 0.1], [0.1, 0.15], [0.15, 0.3]]
    first = acks[0]
    assert first["acknowledged"] is True and first["error"] is None
    assert first["session_id"] == created["id"]
    assert set(first) == {"session_id", "created_at", "type", "acknowledged", "error", "data"}


async def test_base64_chunks_are_audio_too_and_an_empty_one_is_acked_with_an_empty_range(
    live: LiveSimulator,
) -> None:
    created = await live.create()

    def chunk(data: bytes) -> str:
        return json.dumps(
            {"type": "audio_chunk", "data": {"chunk": base64.b64encode(data).decode()}}
        )

    conversation = await converse(
        created["url"], [chunk(b"\x01\x00" * 800), chunk(b""), b"\x00" * 320]
    )

    ranges = [a["data"]["byte_range"] for a in conversation.of_type("audio_chunk")]
    assert ranges == [[0, 1600], [1600, 1600], [1600, 1920]]
    assert live.state.sessions[created["id"]].bytes_received == 1920


async def test_a_chunk_that_is_not_base64_is_refused_in_its_ack(live: LiveSimulator) -> None:
    created = await live.create()
    bad = json.dumps({"type": "audio_chunk", "data": {"chunk": "**not base64**"}})

    conversation = await converse(created["url"], [bad])

    [ack] = conversation.of_type("audio_chunk")
    assert ack["acknowledged"] is False
    assert ack["data"] is None
    assert ack["error"]["message"]


async def test_an_unknown_message_gets_an_error_message(live: LiveSimulator) -> None:
    created = await live.create()

    conversation = await converse(created["url"], [json.dumps({"type": "dance"}), "not json"])

    assert len(conversation.of_type("error")) == 2
    assert conversation.close_code == 1000


async def test_stop_runs_the_whole_sequence_and_closes_with_1000(live: LiveSimulator) -> None:
    created = await live.create({"messages_config": PARTIALS_AND_LIFECYCLE})
    audio = speech()

    conversation = await converse(created["url"], chunks(audio, 3200))

    types = conversation.types()
    assert types[0] == "start_recording"
    assert "start_session" not in types
    tail = [
        t for t in types if t not in ("transcript", "speech_start", "speech_end", "audio_chunk")
    ]
    assert tail == [
        "start_recording",
        "stop_recording",
        "end_recording",
        "post_transcript",
        "post_final_transcript",
        "end_session",
    ]
    assert types.index("stop_recording") > max(i for i, t in enumerate(types) if t == "audio_chunk")
    assert conversation.close_code == 1000
    [stop] = conversation.of_type("stop_recording")
    duration = round(len(audio) / 32000, 3)
    assert stop["acknowledged"] is True
    assert stop["data"]["recording_duration"] == duration
    assert stop["data"]["recording_left_to_process"] >= 0
    assert conversation.of_type("end_recording")[0]["data"] == {"recording_duration": duration}
    post = conversation.of_type("post_transcript")[0]["data"]
    final = conversation.of_type("post_final_transcript")[0]["data"]
    assert post["full_transcript"] == final["transcription"]["full_transcript"]
    assert final["metadata"]["audio_duration"] == duration


async def test_finals_left_open_at_stop_come_after_the_stop_ack(live: LiveSimulator) -> None:
    created = await live.create()
    still_speaking = speech([(0.2, 0), (1.0, 0.5)])

    conversation = await converse(created["url"], [still_speaking])

    types = conversation.types()
    final_at = types.index("transcript")
    assert types.index("stop_recording") < final_at < types.index("post_transcript")


async def test_partials_and_finals_share_the_utterance_id(live: LiveSimulator) -> None:
    created = await live.create({"messages_config": {"receive_partial_transcripts": True}})

    conversation = await converse(created["url"], chunks(speech(), 3200))

    transcripts = conversation.of_type("transcript")
    finals = [t["data"] for t in transcripts if t["data"]["is_final"]]
    partials = [t["data"] for t in transcripts if not t["data"]["is_final"]]
    assert len(finals) == 3
    assert [f["id"] for f in finals] == ["00-00000000", "00-00000001", "00-00000002"]
    assert partials and {p["id"] for p in partials} <= {f["id"] for f in finals}
    for final in finals:
        own = [p for p in partials if p["id"] == final["id"]]
        assert all(p["utterance"]["start"] == final["utterance"]["start"] for p in own)
        assert all(p["utterance"]["end"] <= final["utterance"]["end"] for p in own)


async def test_transcripts_describe_the_audio_heard(live: LiveSimulator) -> None:
    created = await live.create({"language_config": {"languages": ["fr", "en"]}})

    conversation = await converse(created["url"], chunks(speech(), 3200))

    finals = [t["data"]["utterance"] for t in conversation.of_type("transcript")]
    assert [(u["start"], u["end"]) for u in finals] == [(0.4, 1.6), (2.1, 2.9), (3.3, 3.9)]
    first = finals[0]
    assert first["text"] == "Speech of 1.20 seconds on channel 0."
    assert first["language"] == "fr"
    assert first["channel"] == 0
    assert 0 < first["confidence"] <= 1
    words = first["words"]
    assert "".join(w["word"] for w in words) == first["text"]
    assert words[0]["start"] == first["start"] and words[-1]["end"] == first["end"]
    assert all(first["start"] <= w["start"] <= w["end"] <= first["end"] for w in words)
    speech_events = [
        (m["type"], m["data"]) for m in conversation.messages if m["type"].startswith("speech_")
    ]
    assert speech_events[:2] == [
        ("speech_start", {"time": 0.4, "channel": 0}),
        ("speech_end", {"time": 1.6, "channel": 0}),
    ]


async def test_silence_produces_no_transcript(live: LiveSimulator) -> None:
    created = await live.create()

    conversation = await converse(created["url"], [silence_pcm16(2.0)])

    assert conversation.of_type("transcript") == []
    assert conversation.of_type("post_transcript")[0]["data"]["full_transcript"] == ""


async def test_default_messages_config_sends_finals_speech_acks_and_post_processing(
    live: LiveSimulator,
) -> None:
    created = await live.create()

    conversation = await converse(created["url"], chunks(speech(), 3200))

    assert set(conversation.types()) == {
        "audio_chunk",
        "speech_start",
        "speech_end",
        "transcript",
        "stop_recording",
        "post_transcript",
        "post_final_transcript",
    }
    assert all(t["data"]["is_final"] for t in conversation.of_type("transcript"))


async def test_every_message_can_be_turned_off(live: LiveSimulator) -> None:
    created = await live.create({"messages_config": ALL_OFF})

    conversation = await converse(created["url"], [*chunks(speech(), 3200), "not json"])

    assert conversation.messages == []
    assert conversation.close_code == 1000
    assert live.state.sessions[created["id"]].messages == []


async def test_realtime_and_post_add_ons_follow_their_settings(live: LiveSimulator) -> None:
    created = await live.create(
        {
            "realtime_processing": {
                "translation": True,
                "translation_config": {"target_languages": ["de", "wo"]},
                "named_entity_recognition": True,
                "sentiment_analysis": True,
            },
            "post_processing": {"summarization": True},
        }
    )

    conversation = await converse(created["url"], chunks(speech(), 3200))

    translations = conversation.of_type("translation")
    assert [t["data"]["target_language"] for t in translations[:2]] == ["de", "wo"]
    first: dict[str, Any] = translations[0]["data"]
    assert first["translated_utterance"]["text"].startswith("[de] Speech of")
    assert len(conversation.of_type("named_entity_recognition")) == 3
    assert len(conversation.of_type("sentiment_analysis")) == 3
    [summary] = conversation.of_type("post_summarization")
    assert summary["data"]["results"] == "3 utterances, 2.60 seconds of speech."
    final = conversation.of_type("post_final_transcript")[0]["data"]
    assert final["translation"]["success"] is True
    assert len(final["translation"]["results"]) == 2
    assert final["summarization"]["results"] == summary["data"]["results"]


async def test_a_frame_over_one_mebibyte_closes_1009_and_is_not_counted(
    live: LiveSimulator,
) -> None:
    created = await live.create()

    async with connect(created["url"], max_size=None) as ws:
        await ws.send(b"\x00" * 3200)
        await ws.send(b"\x00" * (1024 * 1024 + 2))
        await ws.wait_closed()
        assert ws.close_code == 1009

    session = live.state.sessions[created["id"]]
    assert session.bytes_received == 3200
    assert session.accepts_connection


async def test_a_frame_of_exactly_one_mebibyte_is_accepted(live: LiveSimulator) -> None:
    created = await live.create()

    conversation = await converse(created["url"], [b"\x00" * (1024 * 1024)])

    assert conversation.of_type("audio_chunk")[0]["data"]["byte_range"] == [0, 1024 * 1024]


async def test_a_finished_sessions_url_is_refused(live: LiveSimulator) -> None:
    created = await live.create()
    await converse(created["url"], [b"\x00" * 320])

    with pytest.raises(InvalidStatus) as refused:
        async with connect(created["url"]):
            pass

    assert refused.value.response.status_code == 403
