"""The simulator mounted under a prefix of another app (as an embedded dev server would do)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from broker.simulator import SimulatorConfig, SimulatorState, create_simulator_app
from tests.simulator.audio import speech
from tests.simulator.conftest import KEY_HEADERS
from tests.simulator.wsclient import converse
from tests.support.servers import serve_in_thread


@pytest.fixture
def mounted(config: SimulatorConfig) -> Iterator[tuple[str, SimulatorState]]:
    """A host app serving the simulator under /gladia, entering its lifespan itself."""
    simulator = create_simulator_app(config)
    state: SimulatorState = simulator.state.simulator

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with state.running():
            yield

    host = Starlette(routes=[Mount("/gladia", simulator)], lifespan=lifespan)
    with serve_in_thread(host) as base_url:
        yield f"{base_url}/gladia", state


async def test_urls_keep_the_mount_prefix_and_the_socket_works_there(
    mounted: tuple[str, SimulatorState],
) -> None:
    base_url, state = mounted
    async with httpx.AsyncClient(base_url=base_url, headers=KEY_HEADERS) as client:
        created = (await client.post("/v2/live", json={})).json()
        conversation = await converse(created["url"], [speech()])
        listed = (await client.get("/v2/live")).json()

    assert created["url"].startswith(base_url.replace("http://", "ws://") + "/v2/live?token=")
    assert conversation.close_code == 1000
    assert state.sessions[created["id"]].status == "done"
    assert listed["first"].startswith(f"{base_url}/v2/live?")
    assert [call.path for call in state.calls] == ["/v2/live", "/v2/live"]
