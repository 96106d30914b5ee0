"""Debian's Chromium, headless, driven over the DevTools protocol with `websockets`.

No browser download and no driver: the test starts /usr/bin/chromium with a fake microphone fed
from a WAV file, opens one page, evaluates JavaScript in it and takes screenshots.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import websockets

from tests.support.required import missing

LAUNCH_TIMEOUT_S = 20.0


def chromium_binary() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        missing("chromium is not installed (apt-get install chromium)")
    return str(binary)


def chromium_flags(user_data_dir: Path, fake_audio: Path) -> list[str]:
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={fake_audio}",
        "--autoplay-policy=no-user-gesture-required",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--no-default-browser-check",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--user-data-dir={user_data_dir}",
        "--window-size=1000,1300",
        "about:blank",
    ]


class DevTools:
    """One DevTools connection: commands by id, events kept for whoever waits on them."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self._connection:
                message = json.loads(raw)
                waiter = self._pending.pop(message.get("id", -1), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(message)
                elif "method" in message:
                    self.events.append(message)
        finally:
            for waiter in self._pending.values():
                if not waiter.done():
                    waiter.set_exception(ConnectionError("the browser went away"))

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        message_id = next(self._ids)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = waiter
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        await self._connection.send(json.dumps(message))
        answer = await asyncio.wait_for(waiter, timeout=30)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def close(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self._connection.close()


class Page:
    """A tab: navigate, evaluate, wait for a condition, screenshot, read its console."""

    def __init__(self, devtools: DevTools, session_id: str) -> None:
        self._devtools = devtools
        self._session_id = session_id

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self._devtools.send(method, params, self._session_id)

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", {"url": url})
        await self.wait_for("document.readyState === 'complete'")

    async def evaluate(self, expression: str, *, user_gesture: bool = False) -> Any:
        """The value of a JavaScript expression (awaited if it is a promise)."""
        result = await self.send(
            "Runtime.evaluate",
            {
                "expression": expression,
                "returnByValue": True,
                "awaitPromise": True,
                "userGesture": user_gesture,
            },
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def click(self, selector: str) -> None:
        """Click as a person would: the page sees a user gesture (needed for audio)."""
        await self.evaluate(
            f"document.querySelector({json.dumps(selector)}).click()", user_gesture=True
        )

    async def wait_for(self, condition: str, timeout_s: float = 15.0) -> Any:
        """Poll a JavaScript condition until it is truthy; fail with the page's log otherwise."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = await self.evaluate(condition)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out waiting for {condition!r}\n" + "\n".join(self.console())
                )
            await asyncio.sleep(0.1)

    async def screenshot(self) -> bytes:
        captured = await self.send(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
        )
        return base64.b64decode(captured["data"])

    def console(self) -> list[str]:
        """The page's console lines and uncaught exceptions, for failure messages."""
        lines = []
        for event in self._devtools.events:
            if event.get("sessionId") != self._session_id:
                continue
            params = event.get("params", {})
            if event["method"] == "Runtime.consoleAPICalled":
                args = " ".join(
                    str(arg.get("value", arg.get("description", ""))) for arg in params["args"]
                )
                lines.append(f"console.{params['type']}: {args}")
            elif event["method"] == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                lines.append(
                    f"exception: {details.get('exception', {}).get('description', details)}"
                )
        return lines


class Browser:
    def __init__(self, devtools: DevTools) -> None:
        self._devtools = devtools

    @asynccontextmanager
    async def new_page(self) -> AsyncIterator[Page]:
        target = await self._devtools.send("Target.createTarget", {"url": "about:blank"})
        attached = await self._devtools.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self._devtools, attached["sessionId"])
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        try:
            yield page
        finally:
            await self._devtools.send("Target.closeTarget", {"targetId": target["targetId"]})


@asynccontextmanager
async def running_chromium(work_dir: Path, fake_audio: Path) -> AsyncIterator[Browser]:
    """Chromium with a fresh profile in `work_dir`, its microphone playing `fake_audio`."""
    binary = chromium_binary()
    user_data_dir = work_dir / "profile"
    user_data_dir.mkdir()
    log_path = work_dir / "chromium.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [binary, *chromium_flags(user_data_dir, fake_audio)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        endpoint = await _devtools_endpoint(process, user_data_dir / "DevToolsActivePort", log_path)
        async with websockets.connect(endpoint, max_size=None) as connection:
            devtools = DevTools(connection)
            try:
                yield Browser(devtools)
            finally:
                await devtools.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


async def _devtools_endpoint(process: subprocess.Popen[bytes], port_file: Path, log: Path) -> str:
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    while True:
        lines = port_file.read_text().splitlines() if port_file.exists() else []
        if len(lines) >= 2:
            return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"chromium did not start:\n{log.read_text(errors='replace')[-2000:]}"
            )
        await asyncio.sleep(0.05)
