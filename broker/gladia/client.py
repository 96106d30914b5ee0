"""The only code that speaks HTTP to Gladia; upstream failures become domain errors here."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import orjson

from broker.errors import (
    FieldProblem,
    UpstreamAnswerTooLarge,
    UpstreamBusy,
    UpstreamConflict,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamTimeout,
)
from broker.gladia.transport import (
    AnswerTimeout,
    ConnectTimeout,
    HttpTransport,
    NoAnswer,
    NotSent,
)
from broker.observability.logs import note_upstream_status
from broker.observability.metrics import Metrics
from broker.settings import Settings

logger = logging.getLogger("broker.gladia")

LIVE_PATH = "/v2/live"
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
CHUNK_BYTES = 64 * 1024
# How long a call may wait for a free connection of the pool, on top of connecting.
POOL_WAIT_S = 1.0


@dataclass(frozen=True)
class UpstreamAnswer:
    """A complete, size-capped answer from Gladia."""

    method: str
    status_code: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return orjson.loads(self.body)
        except ValueError:  # not JSON, or nested past the parser's depth
            return None


@dataclass(frozen=True)
class CreatedSession:
    """Gladia's answer to a create: the only three things a client ever needs."""

    id: str
    url: str
    created_at: str


@dataclass(frozen=True)
class UpstreamStream:
    """A 200 answer from Gladia whose body is read as it arrives (the recorded audio)."""

    status_code: int
    headers: Mapping[str, str]
    _response: aiohttp.ClientResponse

    async def aiter_bytes(self, chunk_size: int = CHUNK_BYTES) -> AsyncIterator[bytes]:
        async for chunk in self._response.content.iter_chunked(chunk_size):
            yield chunk


@asynccontextmanager
async def open_gladia(
    settings: Settings, metrics: Metrics | None = None
) -> AsyncIterator[GladiaClient]:
    """The process's client for Gladia, open while the app serves; call it from the event loop."""
    if settings.gladia_api_key is None:
        raise ValueError("GLADIA_API_KEY is required to call Gladia")
    api = HttpTransport(
        settings.gladia_origin,
        {"x-gladia-key": str(settings.gladia_api_key), "Accept": "application/json"},
        max_connections=settings.gladia_max_connections,
        connect_timeout_s=settings.gladia_connect_timeout_s,
        read_timeout_s=settings.gladia_read_timeout_s,
        total_timeout_s=settings.gladia_total_timeout_s,
        pool_wait_s=POOL_WAIT_S,
        max_answer_bytes=MAX_RESPONSE_BYTES,
    )
    files = _open_file_client(settings)
    try:
        yield GladiaClient(api, files, settings, metrics)
    finally:
        await files.close()
        await api.aclose()


def _open_file_client(settings: Settings) -> aiohttp.ClientSession:
    """aiohttp for the recorded audio, streamed: explicit timeouts and pool limits, no env proxies.

    aiohttp rather than httpx: httpcore's pool re-scans every connection for every queued
    request, which at 50 concurrent creates cost 3 ms of CPU per call (see docs/performance.md).
    """
    timeout = aiohttp.ClientTimeout(
        total=None,  # the audio streams at the client's pace
        connect=settings.gladia_connect_timeout_s + POOL_WAIT_S,
        sock_connect=settings.gladia_connect_timeout_s,
        sock_read=settings.gladia_read_timeout_s,
    )
    connector = aiohttp.TCPConnector(
        limit=settings.gladia_max_connections,
        limit_per_host=0,
        keepalive_timeout=30,
    )
    return aiohttp.ClientSession(
        base_url=settings.gladia_origin,
        headers={"x-gladia-key": str(settings.gladia_api_key)},
        timeout=timeout,
        connector=connector,
        trust_env=False,
        raise_for_status=False,
    )


class GladiaClient:
    """Gladia Live v2's REST surface, as the broker uses it.

    The JSON calls go through `api`, a lean keep-alive pool; the streamed audio through `files`.
    """

    def __init__(
        self,
        api: HttpTransport,
        files: aiohttp.ClientSession,
        settings: Settings,
        metrics: Metrics | None = None,
    ) -> None:
        self._api = api
        self._files = files
        self._metrics = metrics
        self._retry_after_s = settings.retry_after_s
        api_url = urlsplit(settings.gladia_api_url)
        self._ws_scheme = "wss" if api_url.scheme == "https" else "ws"
        self._api_host = api_url.hostname or ""
        # A URL starting so has this scheme and the API's host: its authority ends at that slash.
        self._expected_url_start = f"{self._ws_scheme}://{api_url.netloc}/"

    async def create_live_session(
        self, body: Mapping[str, Any], region: str | None
    ) -> CreatedSession:
        """`POST /v2/live`, never retried: each create that reaches Gladia is billable."""
        params = {"region": region} if region else None
        response = await self._send("POST", LIVE_PATH, json=body, params=params)
        if response.status_code not in (200, 201):
            raise self._failure(response)
        try:
            payload = _json_object(response)
            created = CreatedSession(
                id=_string(payload, "id"),
                url=_string(payload, "url"),
                created_at=_string(payload, "created_at"),
            )
            self._check_session_url(created.url)
        except UpstreamError as exc:
            # Gladia said yes: a session may well exist even though its answer is unusable.
            raise exc.with_unknown_outcome() from None
        if self._metrics is not None:
            self._metrics.sessions_created.inc()
        return created

    async def list_live_sessions(
        self, custom_metadata: Mapping[str, str], limit: int = 20
    ) -> list[dict[str, Any]]:
        """`GET /v2/live` filtered by `custom_metadata` (the SDKs' bracket form): one page."""
        params = {f"custom_metadata[{key}]": value for key, value in custom_metadata.items()}
        response = await self._send("GET", LIVE_PATH, params={**params, "limit": str(limit)})
        if response.status_code != 200:
            raise self._failure(response)
        items = _json_object(response).get("items")
        if not isinstance(items, list):
            raise UpstreamError("Gladia returned an unreadable answer")
        return [item for item in items if isinstance(item, dict)]

    async def get_live_session(self, session_id: str) -> dict[str, Any]:
        response = await self._send("GET", f"{LIVE_PATH}/{session_id}")
        if response.status_code != 200:
            raise self._failure(response)
        return _json_object(response)

    async def delete_live_session(self, session_id: str) -> None:
        """Delete a finished session; 404 means it is already gone, which is the goal."""
        response = await self._send("DELETE", f"{LIVE_PATH}/{session_id}")
        if response.status_code in (200, 202, 204, 404):
            return
        raise self._failure(response)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> UpstreamAnswer:
        target = quote(path) + (f"?{urlencode(params)}" if params else "")
        body = None if json is None else orjson.dumps(json)
        started = time.perf_counter()
        try:
            answer = await self._api.request(method, target, body, "application/json")
        except ConnectTimeout:
            # No connection in time (pool or connect): nothing was sent, so no session exists.
            self._observe(method, path, "timeout", started)
            logger.warning("gladia %s %s could not connect in time", method, _route(path))
            raise UpstreamTimeout("Gladia did not answer in time") from None
        except NotSent:
            self._observe(method, path, "error", started)
            logger.warning("gladia %s %s could not connect", method, _route(path))
            raise UpstreamError("Gladia could not be reached") from None
        except AnswerTimeout:
            self._observe(method, path, "timeout", started)
            logger.warning("gladia %s %s timed out", method, _route(path))
            error: UpstreamError = UpstreamTimeout("Gladia did not answer in time")
            raise error.with_unknown_outcome() from None
        except NoAnswer as exc:
            self._observe(method, path, "error", started)
            logger.warning("gladia %s %s failed: %s", method, _route(path), type(exc).__name__)
            raise UpstreamError("Gladia could not be reached").with_unknown_outcome() from None
        self._observe(method, path, answer.status, started)
        return UpstreamAnswer(method, answer.status, answer.headers, answer.body)

    def _observe(self, method: str, path: str, outcome: int | str, started: float) -> None:
        """Gladia's answer, for the access line and the upstream metrics."""
        note_upstream_status(outcome)
        if self._metrics is not None:
            duration_s = time.perf_counter() - started
            self._metrics.observe_upstream(method, _route(path), str(outcome), duration_s)

    def _failure(self, response: UpstreamAnswer) -> UpstreamError:
        status = response.status_code
        request_id = _request_id(response)
        logger.warning("gladia answered %s (request %s)", status, request_id)
        if status in (400, 422):
            return UpstreamRejected(status, _validation_problems(response))
        if status == 404:
            return UpstreamNotFound()
        if status == 403 and response.method == "DELETE":
            return UpstreamConflict("The session is still live at Gladia; stop it and try again")
        if status == 429:
            retry_after = _retry_after(response) or self._retry_after_s
            return UpstreamBusy("Try again shortly", retry_after_s=retry_after)
        if status >= 500:
            return UpstreamError("Gladia could not serve the request").with_unknown_outcome()
        # 401/403 mean our key is refused: the caller can do nothing about it.
        return UpstreamError("Gladia could not serve the request")

    def _check_session_url(self, url: str) -> None:
        if url.startswith(self._expected_url_start):  # scheme, host and the path's slash
            return
        parts = urlsplit(url)
        if parts.scheme != self._ws_scheme or parts.hostname != self._api_host:
            host_ok = (parts.hostname or "").endswith(".gladia.io") and parts.scheme == "wss"
            if not host_ok:
                logger.error("gladia returned a session URL for an unexpected host")
                raise UpstreamError("Gladia returned an unusable session")

    @asynccontextmanager
    async def stream_file(self, session_id: str) -> AsyncIterator[UpstreamStream]:
        """The recorded audio, streamed; the caller iterates `aiter_bytes()` inside the context."""
        path = f"{LIVE_PATH}/{session_id}/file"
        started = time.perf_counter()
        try:
            response = await self._files.get(path, allow_redirects=False)
        except TimeoutError:
            self._observe("GET", path, "timeout", started)
            raise UpstreamTimeout("Gladia did not answer in time") from None
        except aiohttp.ClientError:
            self._observe("GET", path, "error", started)
            raise UpstreamError("Gladia could not be reached") from None
        # Time to the answer's headers: the audio then streams at the client's pace.
        self._observe("GET", path, response.status, started)
        try:
            if response.status != 200:
                try:
                    body = await _read_capped(response)
                except (TimeoutError, aiohttp.ClientError, UpstreamAnswerTooLarge):
                    raise UpstreamError("Gladia could not serve the request") from None
                answer = UpstreamAnswer("GET", response.status, response.headers, body)
                raise self._failure(answer)
            yield UpstreamStream(response.status, response.headers, response)
        finally:
            response.release()


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    declared = response.content_length
    if declared is not None and declared > MAX_RESPONSE_BYTES:
        raise UpstreamAnswerTooLarge()
    body = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
        body.extend(chunk)
        if len(body) > MAX_RESPONSE_BYTES:
            raise UpstreamAnswerTooLarge()
    return bytes(body)


def _json_object(response: UpstreamAnswer) -> dict[str, Any]:
    payload = response.json()
    if not isinstance(payload, dict):
        raise UpstreamError("Gladia returned an unreadable answer")
    return payload


def _string(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise UpstreamError("Gladia returned an incomplete answer")
    return value


def _validation_problems(response: UpstreamAnswer) -> tuple[FieldProblem, ...]:
    payload = response.json()
    errors = payload.get("validation_errors") if isinstance(payload, dict) else None
    if not isinstance(errors, list):
        message = payload.get("message") if isinstance(payload, dict) else None
        errors = [message] if isinstance(message, str) else []
    problems = []
    for error in errors[:20]:
        # A message quoting a URL could quote the callback capability: leave it out.
        if isinstance(error, str) and "://" not in error:
            field = error.split(" ", 1)[0].strip('"')
            problems.append(FieldProblem(field=field[:100], message=error[:300]))
    return tuple(problems)


def _retry_after(response: UpstreamAnswer) -> int | None:
    value = response.headers.get("retry-after", "")
    return int(value) if value.isdigit() and 0 < int(value) <= 3600 else None


def _request_id(response: UpstreamAnswer) -> str:
    for header in ("x-aipi-call-id", "x-gladia-request-id", "x-request-id"):
        if header in response.headers:
            return response.headers[header][:64]
    return "-"


def _route(path: str) -> str:
    """A path with the session id left out, for logs."""
    return (
        LIVE_PATH
        + ("/{id}" if path != LIVE_PATH else "")
        + ("/file" if path.endswith("/file") else "")
    )
