"""The /demo page in a real browser: a fake microphone, the simulator, what a person sees.

Screenshots are kept in `test-artifacts/demo-page/` at the top of the repository (ignored by
git through the `.gitignore` the tests write there); each test prints the path it wrote.
"""

import json
import time
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from itsdangerous import URLSafeTimedSerializer

from broker.identity.credentials import USER_TOKEN_SALT, Subject
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
FINALS = "document.querySelectorAll('#transcript li.final').length"
TIMELINE = "[...document.querySelectorAll('#timeline li')].map((step) => step.dataset.state)"
STATE = "document.body.dataset.state"
ON_SCREEN = "document.body.innerText"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


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
def broker_url(settings: Settings, request: pytest.FixtureRequest) -> Iterator[str]:
    """The broker as `broker dev` builds it (demo page, dev token), on a real port.

    Parametrized indirectly with a dict, it runs with those settings changed.
    """
    changes: dict[str, Any] = getattr(request, "param", {})
    demo = DemoOptions(simulator=True, dev_token_subject=DEV_USER)
    with serve_in_thread(create_app(replace(settings, **changes), demo)) as base_url:
        yield base_url


@pytest.fixture
async def browser(broker_url: str, tmp_path: Path, fake_microphone: Path) -> AsyncIterator[Browser]:
    # Asks for the broker first, so that Chromium closes its connections before it stops.
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


async def keep_screenshot(page: Page, name: str) -> Path:
    """The page as a PNG in test-artifacts/demo-page/, for a person to look at."""
    screenshot = await page.screenshot()
    assert screenshot.startswith(PNG_SIGNATURE)
    assert len(screenshot) > 10_000
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / ".gitignore").write_text("# Written by tests/broker/test_demo_page.py.\n*\n")
    path = ARTIFACTS / "demo-page" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(screenshot)
    print(f"demo page screenshot: {path}")
    return path


async def start(page: Page, mode: str) -> str:
    await page.click(f"input[name=mode][value={mode}]")
    await page.click("#start")
    await page.wait_for(f"{FINALS} >= 1")
    await page.wait_for(f"{STATE} === 'live'")
    session_id: str = await page.evaluate("document.body.dataset.sessionId")
    assert await page.evaluate("document.getElementById('session-id').textContent") == session_id
    return session_id


async def resumed(page: Page, simulator: Simulator, session_id: str, reconnects: int) -> None:
    """The page is live again on the same session, and new finals keep coming."""
    finals_before = await page.evaluate(FINALS)
    await page.wait_for(f"document.body.dataset.reconnects === '{reconnects}'")
    await page.wait_for(f"{STATE} === 'live'")
    await page.wait_for(f"{FINALS} > {finals_before}")
    assert await page.evaluate("document.body.dataset.sessionId") == session_id
    assert await page.evaluate("document.getElementById('reconnects').textContent") == str(
        reconnects
    )
    assert simulator.state.sessions[session_id].socket is not None


async def drop_and_resume(
    page: Page, simulator: Simulator, session_id: str, reconnects: int = 1
) -> None:
    """Gladia closes the socket as a network drop would; the page resumes the same session."""
    assert simulator.state.disconnect(session_id, 4500)
    await resumed(page, simulator, session_id, reconnects)


async def stop(page: Page, redis_url: str) -> None:
    """Stop; the page fetches the result, which frees the user's live-session lease."""
    leases = redis.Redis.from_url(redis_url)
    leases_key = subject_leases_key(Subject(DEV_USER).key)
    assert leases.zcard(leases_key) == 1, "the live session holds a lease"
    await page.click("#stop")
    await page.wait_for(f"{STATE} === 'ended'")
    await page.wait_for("document.body.dataset.result === 'done'")
    assert leases.zcard(leases_key) == 0, "a finished session no longer counts against the limit"


async def no_secret_on_screen(page: Page, token: str) -> None:
    """Neither the user's token nor a session URL's token is in the page's text or console."""
    texts = [await page.evaluate(ON_SCREEN), *page.console()]
    for text in texts:
        assert token not in text, "the user's token reached the page's text"
        assert "token=" not in text, "a session URL reached the page's text"


async def test_the_plain_socket_mode_shows_its_status_resumes_the_same_session_and_ends(
    page: Page, simulator: Simulator, broker_url: str, redis_url: str
) -> None:
    banner = await page.evaluate("document.getElementById('upstream').textContent")
    assert "Gladia simulator" in banner
    token = await page.evaluate("document.getElementById('token').value")
    assert token

    session_id = await start(page, "raw")
    assert (
        await page.evaluate("document.querySelector('#transcript li.final').textContent")
    ).startswith("Speech of")
    await drop_and_resume(page, simulator, session_id, reconnects=1)

    await page.click("#drop")
    await page.wait_for(f"{STATE} === 'reconnecting'")
    await resumed(page, simulator, session_id, reconnects=2)
    assert len(simulator.calls("POST", "/v2/live")) == 1, "no second session was created"
    log = await page.evaluate("document.getElementById('log').textContent")
    assert "simulating a network drop" in log
    assert log.count(f"GET /v1/sessions/{session_id} → the same session") == 2
    await keep_screenshot(page, "plain-socket-live.png")

    await stop(page, redis_url)
    await page.wait_for("!document.getElementById('full').hidden")
    full_text = await page.evaluate("document.getElementById('full-text').textContent")
    assert full_text.startswith("Speech of")
    assert await page.evaluate(TIMELINE) == [
        "starting",
        "connecting",
        "live",
        "reconnecting",
        "live",
        "reconnecting",
        "live",
        "ending",
        "ended",
    ]
    assert await page.evaluate("document.getElementById('status').textContent") == "ended"
    assert await page.evaluate("document.getElementById('error').hidden")
    await keep_screenshot(page, "plain-socket-ended.png")
    on_screen = await page.evaluate(ON_SCREEN)
    assert "Speech of" in on_screen and session_id in on_screen
    await no_secret_on_screen(page, token)

    async with httpx.AsyncClient(base_url=broker_url) as http:
        owned = await http.get(
            f"/v1/sessions/{session_id}", headers={"Authorization": f"Bearer {token}"}
        )
    assert owned.status_code == 200, "the session belongs to the page's user"


def described(selector: str) -> str:
    """JavaScript: the first element matching `selector` as the page styles it, or null."""
    return (
        f"(() => {{ const item = document.querySelector({json.dumps(selector)});"
        " if (!item) return null; const style = getComputedStyle(item);"
        " return {className: item.className, utterance: item.dataset.utterance,"
        " partials: Number(item.dataset.partials), text: item.textContent,"
        " fontStyle: style.fontStyle, color: style.color}; })()"
    )


async def test_partials_are_lighter_and_replaced_in_place_by_their_final(
    page: Page, simulator: Simulator, redis_url: str
) -> None:
    await page.click("#start")
    # A partial after a final, so that the screenshot shows both.
    partial = await page.wait_for(f"{FINALS} >= 1 && {described('#transcript li.partial')}")
    await keep_screenshot(page, "partial-and-finals.png")
    assert partial["text"].startswith("Speech of")
    assert await page.evaluate("document.querySelectorAll('#transcript li.partial').length") <= 1
    # The utterance's own list item turns final: the partial is replaced, not kept beside it.
    utterance = f"#transcript li[data-utterance='{partial['utterance']}']"
    await page.wait_for(f"{described(utterance)}.className === 'final'")
    final = await page.evaluate(described(utterance))
    assert await page.evaluate(f"document.querySelectorAll({json.dumps(utterance)}).length") == 1
    assert final["partials"] >= 1, "the final took the place of the partials shown before it"
    assert partial["fontStyle"] == "italic" and final["fontStyle"] == "normal"
    assert partial["color"] != final["color"]
    await stop(page, redis_url)


async def test_the_js_sdk_through_the_facade_shows_transcripts_and_resumes_after_a_drop(
    page: Page, simulator: Simulator, redis_url: str
) -> None:
    session_id = await start(page, "sdk")
    (create,) = simulator.calls("POST", "/v2/live")
    assert create.json["messages_config"]["receive_acknowledgments"] is True
    log = await page.evaluate("document.getElementById('log').textContent")
    assert "POST /v2/live on this broker" in log
    assert await page.evaluate("document.getElementById('drop').disabled")
    await drop_and_resume(page, simulator, session_id)
    await stop(page, redis_url)
    assert simulator.state.sessions[session_id].status == "done"
    log = await page.evaluate("document.getElementById('log').textContent")
    assert f"GET /v2/live/{session_id} → done" in log
    assert await page.evaluate(TIMELINE) == [
        "starting",
        "connecting",
        "live",
        "reconnecting",
        "live",
        "ending",
        "ended",
    ]


async def test_the_js_sdk_connect_session_mode_streams_to_a_session_from_v1(
    page: Page, simulator: Simulator, redis_url: str
) -> None:
    session_id = await start(page, "connect")
    assert len(simulator.calls("POST", "/v2/live")) == 1
    await stop(page, redis_url)
    assert simulator.state.sessions[session_id].status == "done"


def expired_token(settings: Settings, subject: str) -> str:
    """A token the broker signed for `subject` whose expiry passed a minute ago."""
    keys = [str(key) for key in reversed(settings.secret_keys)]
    serializer = URLSafeTimedSerializer(keys, salt=USER_TOKEN_SALT)
    return str(serializer.dumps({"sub": subject, "exp": int(time.time()) - 60}))


async def shown_error(page: Page) -> dict[str, str]:
    await page.wait_for(f"{STATE} === 'failed'")
    await page.wait_for("!document.getElementById('error').hidden")
    shown: dict[str, str] = await page.evaluate(
        "({status: document.getElementById('error').dataset.status,"
        " text: document.getElementById('error').innerText})"
    )
    for stack_sign in ("    at ", ".js:", "Error:", "[object"):
        assert stack_sign not in shown["text"], f"not words but a stack: {shown['text']!r}"
    return shown


@pytest.mark.parametrize("broker_url", [{"max_live_per_subject": 1}], indirect=True)
async def test_refusals_are_shown_in_words_with_what_to_do(
    page: Page, broker_url: str, settings: Settings, simulator: Simulator
) -> None:
    dev_token = await page.evaluate("document.getElementById('token').value")
    stale = expired_token(settings, DEV_USER)
    await page.evaluate(f"document.getElementById('token').value = {stale!r}")
    await page.click("#start")
    refused = await shown_error(page)
    assert refused["status"] == "401"
    assert "401 Unauthorized" in refused["text"]
    assert "POST /v1/sessions was refused" in refused["text"]
    assert "expired" in refused["text"] and "mint a new one" in refused["text"]
    assert await page.evaluate("document.getElementById('status').textContent") == "failed"
    assert await page.evaluate(TIMELINE) == ["starting", "failed"]
    assert not simulator.calls("POST", "/v2/live"), "nothing reached Gladia"
    await keep_screenshot(page, "refused-expired-token.png")
    await no_secret_on_screen(page, stale)

    # The same refusal through the JS SDK and the facade, which answers in Gladia's envelope.
    await page.click("input[name=mode][value=sdk]")
    await page.click("#start")
    through_sdk = await shown_error(page)
    assert through_sdk["status"] == "401"
    assert "401 Unauthorized" in through_sdk["text"]
    assert "POST /v2/live was refused" in through_sdk["text"]
    assert "mint a new one" in through_sdk["text"]
    assert not simulator.calls("POST", "/v2/live"), "nothing reached Gladia"
    await no_secret_on_screen(page, stale)

    # The user's one live session is taken elsewhere: the limit answers 429 with Retry-After.
    async with httpx.AsyncClient(base_url=broker_url) as http:
        taken = await http.post(
            "/v1/sessions",
            headers={"Authorization": f"Bearer {dev_token}"},
            json={"sample_rate": 16000},
        )
    assert taken.status_code == 201
    await page.evaluate(f"document.getElementById('token').value = {dev_token!r}")
    await page.click("input[name=mode][value=raw]")
    await page.click("#start")
    limited = await shown_error(page)
    assert limited["status"] == "429"
    assert "429 Too many requests" in limited["text"]
    assert "A limit was reached" in limited["text"]
    assert "Try again in " in limited["text"]
    print(f"what the page says: {limited['text']!r}")
    await keep_screenshot(page, "refused-live-session-limit.png")
    assert await page.evaluate("document.getElementById('start').disabled") is False
    await no_secret_on_screen(page, dev_token)
