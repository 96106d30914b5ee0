"""The /demo page in a real browser: a fake microphone, the simulator, transcripts on screen."""

import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from broker.identity.credentials import Subject
from broker.settings import Settings
from broker.store.keys import subject_leases_key
from broker.web.app import create_app
from broker.web.routes.demo import SDK_BUNDLE, DemoOptions
from tests.broker.conftest import Simulator
from tests.simulator.audio import speech
from tests.support.browser import Browser, Page, running_chromium
from tests.support.required import missing
from tests.support.servers import serve_in_thread


@pytest.fixture
def redis_topology(redis_url: str) -> tuple[str, bool]:
    """These tests read Redis directly, on the single server (the Cluster runs the rest)."""
    return redis_url, False


DEV_USER = "dev-user"
FINALS = "document.querySelectorAll('#finals li.final').length"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def fake_microphone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Speech-like tone bursts between silences; Chromium loops the file as its microphone."""
    path = tmp_path_factory.mktemp("audio") / "speech.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(speech())
    return path


@pytest.fixture
def broker_url(settings: Settings) -> Iterator[str]:
    """The broker as `broker dev` builds it (demo page, dev token), on a real port."""
    demo = DemoOptions(simulator=True, dev_token_subject=DEV_USER)
    with serve_in_thread(create_app(settings, demo)) as base_url:
        yield base_url


@pytest.fixture
async def browser(tmp_path: Path, fake_microphone: Path) -> AsyncIterator[Browser]:
    async with running_chromium(tmp_path, fake_microphone) as running:
        yield running


@pytest.fixture
async def page(browser: Browser, broker_url: str) -> AsyncIterator[Page]:
    if not SDK_BUNDLE.is_file():
        missing("Gladia's JS SDK is not installed: run `make demo-assets` (needs npm)")
    async with browser.new_page() as opened:
        await opened.goto(f"{broker_url}/demo")
        await opened.wait_for("document.body.dataset.ready === 'true'")
        yield opened


async def start(page: Page, mode: str) -> str:
    await page.click(f"input[name=mode][value={mode}]")
    await page.click("#start")
    await page.wait_for(f"{FINALS} >= 1")
    session_id: str = await page.evaluate("document.body.dataset.sessionId")
    return session_id


async def drop_and_resume(page: Page, simulator: Simulator, session_id: str) -> None:
    """Gladia closes the socket as a network drop would; the page resumes the same session."""
    finals_before = await page.evaluate(FINALS)
    assert simulator.state.disconnect(session_id, 4500)
    await page.wait_for("document.body.dataset.reconnects === '1'")
    await page.wait_for("document.body.dataset.state === 'streaming'")
    await page.wait_for(f"{FINALS} > {finals_before}")
    assert simulator.state.sessions[session_id].socket is not None


async def stop(page: Page, redis_url: str) -> None:
    """Stop; the page fetches the result, which frees the user's live-session lease."""
    leases = redis.Redis.from_url(redis_url)
    leases_key = subject_leases_key(Subject(DEV_USER).key)
    assert leases.zcard(leases_key) == 1, "the live session holds a lease"
    await page.click("#stop")
    await page.wait_for("document.body.dataset.state === 'ended'")
    await page.wait_for("document.body.dataset.result === 'done'")
    assert leases.zcard(leases_key) == 0, "a finished session no longer counts against the limit"


async def test_the_plain_socket_mode_shows_transcripts_resumes_after_a_drop_and_ends(
    page: Page, simulator: Simulator, broker_url: str, redis_url: str, tmp_path: Path
) -> None:
    banner = await page.evaluate("document.getElementById('upstream').textContent")
    assert "Gladia simulator" in banner
    assert await page.evaluate("document.getElementById('token').value")

    session_id = await start(page, "raw")
    assert (
        await page.evaluate("document.querySelector('#finals li.final').textContent")
    ).startswith("Speech of")
    await drop_and_resume(page, simulator, session_id)
    log = await page.evaluate("document.getElementById('log').textContent")
    assert f"GET /v1/sessions/{session_id}" in log, "the page asked the broker for the session"
    await stop(page, redis_url)
    await page.wait_for("!document.getElementById('full').hidden")
    full_text = await page.evaluate("document.getElementById('full-text').textContent")
    assert full_text.startswith("Speech of")

    screenshot = await page.screenshot()
    (tmp_path / "demo-page.png").write_bytes(screenshot)
    assert screenshot.startswith(PNG_SIGNATURE)
    assert len(screenshot) > 10_000
    on_screen = await page.evaluate("document.body.innerText")
    assert "Speech of" in on_screen and "ended" in on_screen

    token = await page.evaluate("document.getElementById('token').value")
    async with httpx.AsyncClient(base_url=broker_url) as http:
        owned = await http.get(
            f"/v1/sessions/{session_id}", headers={"Authorization": f"Bearer {token}"}
        )
    assert owned.status_code == 200, "the session belongs to the page's user"


async def test_the_js_sdk_through_the_facade_shows_transcripts_and_resumes_after_a_drop(
    page: Page, simulator: Simulator, redis_url: str
) -> None:
    session_id = await start(page, "sdk")
    (create,) = simulator.calls("POST", "/v2/live")
    assert create.json["messages_config"]["receive_acknowledgments"] is True
    log = await page.evaluate("document.getElementById('log').textContent")
    assert "POST /v2/live on this broker" in log
    await drop_and_resume(page, simulator, session_id)
    await stop(page, redis_url)
    assert simulator.state.sessions[session_id].status == "done"
    log = await page.evaluate("document.getElementById('log').textContent")
    assert f"GET /v2/live/{session_id} → done" in log


async def test_the_js_sdk_connect_session_mode_streams_to_a_session_from_v1(
    page: Page, simulator: Simulator, redis_url: str
) -> None:
    session_id = await start(page, "connect")
    assert len(simulator.calls("POST", "/v2/live")) == 1
    await stop(page, redis_url)
    assert simulator.state.sessions[session_id].status == "done"
