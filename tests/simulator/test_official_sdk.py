"""The official Python SDK, unchanged, against the simulator on a real port."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from gladiaio_sdk import GladiaClient, HttpError, LiveV2EndedMessage
from gladiaio_sdk.v2.live.async_client import LiveV2AsyncClient
from gladiaio_sdk.v2.live.client import LiveV2Client

from broker.simulator.pcm import AudioFormat
from broker.simulator.transcriber import Transcriber, TranscriberSettings
from tests.simulator.audio import SPEECH, chunks, encode, interleave, samples, speech
from tests.simulator.conftest import API_KEY, LiveSimulator, eventually, wait_until

CHUNK = 3200  # 100 ms of 16 kHz 16-bit mono

# SDK 2.2.0's live clients have no close(), and one never closed leaves its HTTP client's sockets
# for the garbage collector (a ResourceWarning): the fixtures close them as the SDK would.


@pytest.fixture
def client(live: LiveSimulator) -> Iterator[LiveV2Client]:
    """The SDK's live client on the simulator."""
    sdk = GladiaClient(api_key=API_KEY, api_url=live.base_url).live_v2()
    yield sdk
    sdk._http_client.close()


@pytest.fixture
async def async_client(live: LiveSimulator) -> AsyncIterator[LiveV2AsyncClient]:
    """The SDK's async live client on the simulator."""
    sdk = GladiaClient(api_key=API_KEY, api_url=live.base_url).live_v2_async()
    yield sdk
    await sdk._http_client.close()


class Recorder:
    """Collects what a session emits, from the SDK's own threads."""

    def __init__(self, session: Any) -> None:
        self.messages: list[Any] = []
        self.ended: list[LiveV2EndedMessage] = []
        self.connected = 0
        self.lock = threading.Lock()
        session.on("message", self._message)
        session.on("ended", self.ended.append)
        session.on("connected", self._connected)

    def _message(self, message: Any) -> None:
        with self.lock:
            self.messages.append(message)

    def _connected(self, _: Any) -> None:
        self.connected += 1

    def of_type(self, message_type: str) -> list[Any]:
        with self.lock:
            return [m for m in self.messages if m.type == message_type]

    def finals(self) -> list[Any]:
        return [m.data for m in self.of_type("transcript") if m.data.is_final]


def _ready(session: Any) -> str:
    assert session.wait_until_ready(5)
    session_id: str = session.session_id
    return session_id


def _ended(session: Any) -> None:
    wait_until(lambda: session.status == "ended", 10, "the session to end")


def _reference_spans(audio: bytes) -> list[tuple[float, float]]:
    settings = TranscriberSettings(AudioFormat("wav/pcm", 16, 16000, 1), 0.05, 5, 0.6, "en", 0.2)
    transcriber = Transcriber(settings)
    transcriber.feed(audio)
    transcriber.finish()
    return [(u.start, u.end) for u in transcriber.utterances]


def test_the_sdk_streams_a_whole_session_and_fetches_the_result(
    live: LiveSimulator, client: LiveV2Client
) -> None:
    session = client.start_session({"messages_config": {"receive_partial_transcripts": True}})
    recorder = Recorder(session)
    session_id = _ready(session)
    audio = speech(SPEECH * 2)

    for chunk in chunks(audio, CHUNK):
        session.send_audio(chunk)
    session.stop_recording()
    _ended(session)

    assert recorder.ended[0].code == 1000
    partials = [m.data for m in recorder.of_type("transcript") if not m.data.is_final]
    finals = recorder.finals()
    assert len(finals) == 6 and partials
    assert {p.id for p in partials} <= {f.id for f in finals}
    assert recorder.of_type("post_transcript") and recorder.of_type("post_final_transcript")
    assert recorder.of_type("audio_chunk") == []  # acks were forced on, and hidden by the SDK
    stored = live.state.sessions[session_id]
    assert stored.bytes_received == len(audio)
    assert stored.request_params["messages_config"]["receive_acknowledgments"] is True
    job = client.get(session_id)
    assert job.status == "done"
    assert job.result is not None and job.result.transcription is not None
    assert job.result.transcription.full_transcript == " ".join(f.utterance.text for f in finals)
    assert job.file is not None and job.file.audio_duration == round(len(audio) / 32000, 3)
    assert client.get_file(session_id)[:4] == b"RIFF"


def test_the_sdk_resumes_after_a_forced_disconnect_losing_and_repeating_nothing(
    live: LiveSimulator, client: LiveV2Client
) -> None:
    session = client.start_session({})
    recorder = Recorder(session)
    session_id = _ready(session)
    before, after = speech(SPEECH), speech(SPEECH[::-1])
    stored = live.state.sessions[session_id]

    for chunk in chunks(before, CHUNK):
        session.send_audio(chunk)
    wait_until(lambda: stored.bytes_received > 0, what="some audio to arrive")
    assert live.state.disconnect(session_id, 4500)
    wait_until(lambda: recorder.connected == 2, 10, "the SDK to reconnect")
    for chunk in chunks(after, CHUNK):
        session.send_audio(chunk)
    session.stop_recording()
    _ended(session)

    assert recorder.ended[0].code == 1000
    assert stored.bytes_received == len(before) + len(after)
    assert bytes(stored.audio) == before + after
    finals = recorder.finals()
    spans = [(f.utterance.start, f.utterance.end) for f in finals]
    assert spans == _reference_spans(before + after)
    assert all(previous[1] <= current[0] for previous, current in itertools.pairwise(spans))
    assert len({f.id for f in finals}) == len(finals)


async def test_the_async_sdk_transcribes_three_interleaved_channels(
    live: LiveSimulator, async_client: LiveV2AsyncClient
) -> None:
    session = async_client.start_session({"channels": 3})
    finals: list[Any] = []
    ended = asyncio.Event()
    session.on("message", lambda m: finals.append(m.data) if m.type == "transcript" else None)
    session.on("ended", lambda _: ended.set())
    voices = [
        [(0.2, 0.0), (0.6, 0.5), (1.4, 0.0)],
        [(0.9, 0.0), (0.5, 0.4), (0.8, 0.0)],
        [(1.5, 0.0), (0.4, 0.6), (0.3, 0.0)],
    ]
    audio = interleave([encode(samples(voice)) for voice in voices], 2)
    # The async SDK forgets a stop_recording issued before its socket opens, so wait for it.
    await eventually(lambda: session.status == "connected", what="the socket to open")

    for chunk in chunks(audio, CHUNK * 3):
        session.send_audio(chunk)
    session.stop_recording()
    async with asyncio.timeout(10):
        await ended.wait()

    assert [(f.utterance.channel, f.utterance.start, f.utterance.end) for f in finals] == [
        (0, 0.2, 0.8),
        (1, 0.9, 1.4),
        (2, 1.5, 1.9),
    ]
    session_id = await session.get_session_id()
    await eventually(lambda: live.state.sessions[session_id].status == "done", what="done")
    job = await async_client.get(session_id)
    assert job.result is not None and job.result.metadata.number_of_distinct_channels == 3
    assert job.result.metadata.billing_time == round(3 * job.result.metadata.audio_duration, 3)


def test_the_sdk_lists_and_deletes_sessions(client: LiveV2Client) -> None:
    ids = []
    for user in ("ann", "bob", "ann"):
        session = client.start_session({"custom_metadata": {"user": user}})
        ids.append(_ready(session))
        session.send_audio(speech([(0.3, 0.5)]))
        session.stop_recording()
        _ended(session)

    anns = client.list({"custom_metadata": {"user": "ann"}, "status": ["done"]})
    first_page = client.list({"limit": 2})
    second_page = client.list({"url": first_page.next})

    assert [item.id for item in anns.items] == [ids[2], ids[0]]
    assert [item.id for item in first_page.items] == [ids[2], ids[1]]
    assert [item.id for item in second_page.items] == [ids[0]]
    assert second_page.next is None
    assert client.delete(ids[1]) is True
    with pytest.raises(HttpError) as missing:
        client.get(ids[1])
    assert missing.value.status == 404
    assert (missing.value.request_id or "").startswith("G-")
