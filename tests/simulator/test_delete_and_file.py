"""DELETE /v2/live/{id} and GET /v2/live/{id}/file."""

from __future__ import annotations

import io
import struct
import wave

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.simulator.audio import chunks, encode, samples, speech
from tests.simulator.conftest import InProcess, LiveSimulator
from tests.simulator.wsclient import converse

UNKNOWN = "00000000-0000-0000-0000-000000000000"


async def test_a_finished_session_is_deleted_with_202_and_is_then_gone(live: LiveSimulator) -> None:
    created = await live.create()
    await converse(created["url"], [speech()])

    async with live.client() as client:
        deleted = await client.delete(f"/v2/live/{created['id']}")
        again = await client.delete(f"/v2/live/{created['id']}")
        fetched = await client.get(f"/v2/live/{created['id']}")
        listed = (await client.get("/v2/live")).json()["items"]

    assert deleted.status_code == 202
    assert deleted.content == b""
    assert again.status_code == 404
    assert fetched.status_code == 404
    assert listed == []


async def test_a_session_still_live_cannot_be_deleted(sim: InProcess) -> None:
    created = await sim.create()

    response = await sim.client.delete(f"/v2/live/{created['id']}")

    assert response.status_code == 403
    assert response.json()["statusCode"] == 403


async def test_a_failed_session_can_be_deleted(sim: InProcess) -> None:
    created = await sim.create()
    sim.state.store.settle(sim.state.sessions[created["id"]], "error", 500)

    assert (await sim.client.delete(f"/v2/live/{created['id']}")).status_code == 202


async def test_deleting_an_unknown_session_is_a_404(sim: InProcess) -> None:
    assert (await sim.client.delete(f"/v2/live/{UNKNOWN}")).status_code == 404


async def test_the_deleted_sessions_url_no_longer_connects(live: LiveSimulator) -> None:
    created = await live.create()
    await converse(created["url"], [speech()])
    async with live.client() as client:
        await client.delete(f"/v2/live/{created['id']}")

    with pytest.raises(InvalidStatus) as refused:
        async with connect(created["url"]):
            pass
    assert refused.value.response.status_code == 403


async def test_the_file_is_a_wav_of_exactly_the_bytes_received(live: LiveSimulator) -> None:
    created = await live.create()
    audio = speech()
    await converse(created["url"], chunks(audio, 3000))

    async with live.client() as client:
        response = await client.get(f"/v2/live/{created['id']}/file")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content[:4] == b"RIFF"
    with wave.open(io.BytesIO(response.content)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 16000)
        assert wav.readframes(wav.getnframes()) == audio


@pytest.mark.parametrize(
    ("encoding", "bit_depth", "tag"), [("wav/pcm", 24, 1), ("wav/alaw", 8, 6), ("wav/ulaw", 8, 7)]
)
async def test_the_file_header_matches_the_encoding(
    live: LiveSimulator, encoding: str, bit_depth: int, tag: int
) -> None:
    created = await live.create(
        {"encoding": encoding, "bit_depth": bit_depth, "sample_rate": 8000, "channels": 2}
    )
    audio = encode(samples([(0.5, 0.5)], 8000) * 2, encoding, bit_depth)
    await converse(created["url"], [audio])

    async with live.client() as client:
        content = (await client.get(f"/v2/live/{created['id']}/file")).content

    format_tag, channels, rate, byte_rate, block, bits = struct.unpack("<HHIIHH", content[20:36])
    assert (format_tag, channels, rate, bits) == (tag, 2, 8000, bit_depth)
    assert block == 2 * bit_depth // 8 and byte_rate == 8000 * block
    assert content.endswith(audio)
    data_at = content.index(b"data")
    assert struct.unpack("<I", content[data_at + 4 : data_at + 8])[0] == len(audio)


async def test_a_client_wav_header_is_not_nested_in_the_file(live: LiveSimulator) -> None:
    created = await live.create()
    audio = speech([(0.5, 0.5)])
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(audio)
    await converse(created["url"], [buffer.getvalue()])

    async with live.client() as client:
        content = (await client.get(f"/v2/live/{created['id']}/file")).content

    assert content.count(b"RIFF") == 1
    assert content.endswith(audio)
    assert live.state.sessions[created["id"]].bytes_received == len(buffer.getvalue())


async def test_there_is_no_file_before_any_audio(sim: InProcess) -> None:
    created = await sim.create()

    response = await sim.client.get(f"/v2/live/{created['id']}/file")

    assert response.status_code == 404


async def test_the_file_of_an_unknown_session_is_a_404(sim: InProcess) -> None:
    assert (await sim.client.get(f"/v2/live/{UNKNOWN}/file")).status_code == 404
