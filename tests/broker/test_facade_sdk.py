"""Gladia's Python SDK, unchanged, with the broker as its `api_url`: the whole job lifecycle."""

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from gladiaio_sdk import (
    GladiaClient,
    LiveV2ConnectSessionOptions,
    LiveV2InitRequest,
    LiveV2MessagesConfig,
)
from gladiaio_sdk.network import HttpError
from gladiaio_sdk.v2.live.async_client import LiveV2AsyncClient
from gladiaio_sdk.v2.live.generated_types import LiveV2LanguageConfig

from broker.settings import Settings
from broker.web.app import create_app
from tests.broker.conftest import Simulator
from tests.simulator.audio import speech
from tests.support.sdk import stream
from tests.support.servers import serve_in_thread

Headers = Callable[[str], dict[str, str]]


@pytest.fixture
def broker_url(settings: Settings) -> Iterator[str]:
    """The broker on a real loopback port, as the SDK needs one."""
    with serve_in_thread(create_app(settings)) as base_url:
        yield base_url


SdkFor = Callable[[dict[str, str]], LiveV2AsyncClient]


@pytest.fixture
async def sdk_for(broker_url: str) -> AsyncIterator[SdkFor]:
    """The SDK exactly as the README tells an app to configure it, for the given headers."""
    made: list[LiveV2AsyncClient] = []

    def make(headers: dict[str, str]) -> LiveV2AsyncClient:
        client = GladiaClient(api_url=broker_url, api_key="unused", http_headers=headers)
        made.append(client.live_v2_async())
        return made[-1]

    yield make
    # SDK 2.2.0's live client has no close(), and an app that never closes its HTTP client
    # leaves sockets for the garbage collector (a ResourceWarning); close it as the SDK would.
    for live in made:
        await live._http_client.close()


async def until_done(live: LiveV2AsyncClient, session_id: str) -> Any:
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        job = await live.get(session_id)
        if job.status == "done" or asyncio.get_running_loop().time() > deadline:
            return job
        await asyncio.sleep(0.05)


async def test_start_stream_get_list_and_delete_through_the_broker(
    sdk_for: SdkFor, mint: Headers, simulator: Simulator
) -> None:
    live = sdk_for(mint("alice"))
    options = LiveV2InitRequest(
        encoding="wav/pcm",
        sample_rate=16000,
        bit_depth=16,
        channels=1,
        language_config=LiveV2LanguageConfig(languages=["en"]),
        messages_config=LiveV2MessagesConfig(receive_partial_transcripts=True),
    )
    session = live.start_session(options)
    audio = speech()
    messages = await stream(session, audio)

    session_id = session.session_id
    assert session_id in simulator.state.sessions
    assert simulator.state.sessions[session_id].bytes_received == len(audio)
    finals = [m for m in messages if m.type == "transcript" and m.data.is_final]
    partials = [m for m in messages if m.type == "transcript" and not m.data.is_final]
    assert finals and partials
    assert not [m for m in messages if m.type == "audio_chunk"], "acks stay hidden, as asked"
    (created,) = simulator.calls()
    assert created.json["messages_config"] == {
        "receive_partial_transcripts": True,
        "receive_acknowledgments": True,
    }
    assert created.json["custom_metadata"]["broker_subject"], "the broker set its own metadata"

    job = await until_done(live, session_id)
    assert job.status == "done"
    assert [u.text for u in job.result.transcription.utterances] == [
        m.data.utterance.text for m in finals
    ]
    assert job.custom_metadata is None, "the broker's metadata is not shown"

    listed = await live.list()
    assert [item.id for item in listed.items] == [session_id]
    assert listed.next is None

    audio_file = await live.get_file(session_id)
    assert audio_file[:4] == b"RIFF"
    assert len(audio_file) == 44 + len(audio)

    assert await live.delete(session_id) is True
    assert session_id not in simulator.state.sessions
    with pytest.raises(HttpError) as missing:
        await live.get(session_id)
    assert missing.value.status == 404
    assert (await live.list()).items == []


async def test_another_user_with_the_same_client_sees_none_of_it(
    sdk_for: SdkFor, mint: Headers, simulator: Simulator
) -> None:
    alice = sdk_for(mint("alice"))
    session = alice.start_session({"sample_rate": 16000})
    await stream(session, speech())
    session_id = session.session_id
    assert session_id is not None, "the SDK started no session"

    mallory = sdk_for(mint("mallory"))
    assert (await mallory.list()).items == []
    for attempt in (mallory.get, mallory.get_file, mallory.delete):
        with pytest.raises(HttpError) as refused:
            await attempt(session_id)
        assert refused.value.status == 404
    assert session_id in simulator.state.sessions, "nothing was deleted upstream"
    assert (await alice.get(session_id)).id == session_id


async def test_connect_session_streams_to_a_session_the_facade_created(
    broker_url: str, sdk_for: SdkFor, mint: Headers, simulator: Simulator
) -> None:
    headers = mint("alice")
    async with httpx.AsyncClient(base_url=broker_url, headers=headers) as http:
        created = (await http.post("/v2/live", json={"sample_rate": 16000})).json()
        again = (await http.get(f"/v1/sessions/{created['id']}")).json()
    assert again["url"] == created["url"], "one record behind both surfaces"

    live = sdk_for(headers)
    session = live.connect_session(
        LiveV2ConnectSessionOptions(
            id=created["id"],
            url=again["url"],
            messages_config=LiveV2MessagesConfig.from_dict(again["messages_config"]),
        )
    )
    messages = await stream(session, speech())
    assert [m for m in messages if m.type == "transcript" and m.data.is_final]
    assert (await until_done(live, created["id"])).status == "done"


async def test_a_refused_config_reaches_the_sdk_as_a_field_named_400(
    sdk_for: SdkFor, mint: Headers, simulator: Simulator
) -> None:
    live = sdk_for(mint("alice"))
    session = live.start_session({"sample_rate": 12345, "callback": True})
    errors: list[Any] = []
    ended = asyncio.Event()
    session.on("error", errors.append)
    session.on("ended", lambda _: ended.set())
    await asyncio.wait_for(ended.wait(), timeout=10)
    (error,) = errors
    assert isinstance(error, HttpError)
    assert error.status == 400
    assert set(error.invalid_parameters) >= {"sample_rate"}
    assert simulator.calls() == []
