"""Redis killed, restarted or stalled under load: fast 503s, red readiness, quick recovery, no
acknowledged session lost, and nothing applied twice. Real redis-server processes throughout."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from broker.policy.limits import Limits
from broker.settings import Settings
from broker.store.connection import open_redis
from broker.store.keys import (
    ACCOUNT_LEASES_KEY,
    address_misses_key,
    session_keys,
    subject_creates_key,
    subject_leases_key,
)
from broker.store.records import SessionStore
from tests.broker.conftest import FAULT_SOCKET_TIMEOUT_S, Simulator, running_broker
from tests.support.leases import confirm_leases
from tests.support.records import session_record
from tests.support.servers import RedisServer, start_redis_server

Headers = Callable[[str], dict[str, str]]

# What "fails fast" means here: far below a second, with the socket timeout set to 0.3 s.
FAST_S = 0.5
RECOVERY_S = 1.0


@pytest.fixture
def redis_topology(redis_url: str) -> tuple[str, bool]:
    """Faults are injected into one redis-server process: these tests run on it alone."""
    return redis_url, False


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of its own that fsyncs every write, so a kill loses nothing it answered."""
    server = start_redis_server(
        tmp_path, extra_args=("--appendonly", "yes", "--appendfsync", "always")
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def durable_broker(
    fast_settings: Settings, durable_redis: RedisServer
) -> AsyncIterator[httpx.AsyncClient]:
    async with running_broker(replace(fast_settings, redis_url=durable_redis.url)) as client:
        yield client


@dataclass(frozen=True)
class Outcome:
    started: float
    elapsed_s: float
    status: int


async def timed(call: Awaitable[httpx.Response]) -> Outcome:
    started = time.monotonic()
    response = await call
    return Outcome(started, time.monotonic() - started, response.status_code)


async def create_sessions(
    broker: httpx.AsyncClient, headers: dict[str, str], count: int
) -> dict[str, str]:
    """`count` sessions created concurrently; their ids and URLs, as acknowledged with 201."""
    responses = await asyncio.gather(
        *(broker.post("/v1/sessions", headers=headers, json={}) for _ in range(count))
    )
    assert [r.status_code for r in responses] == [201] * count
    return {r.json()["id"]: r.json()["url"] for r in responses}


async def test_redis_killed_under_load_fails_fast_goes_unready_and_recovers_without_loss(
    durable_broker: httpx.AsyncClient, durable_redis: RedisServer, mint: Headers
) -> None:
    alice = mint("alice")
    acknowledged = await create_sessions(durable_broker, alice, 20)
    ids = list(acknowledged)
    outcomes: list[Outcome] = []
    stop = asyncio.Event()

    async def reconnecting_user(worker: int) -> None:
        turn = worker
        while not stop.is_set():
            session_id = ids[turn % len(ids)]
            turn += 1
            outcomes.append(
                await timed(durable_broker.get(f"/v1/sessions/{session_id}", headers=alice))
            )
            await asyncio.sleep(0.005)

    load = [asyncio.create_task(reconnecting_user(n)) for n in range(8)]
    await asyncio.sleep(0.3)
    killed_at = time.monotonic()
    await asyncio.to_thread(durable_redis.stop)
    await asyncio.sleep(0.5)

    # While Redis is down: every answer is a quick 503 with Retry-After, creates included.
    down = [o for o in outcomes if o.started > killed_at + 0.05]
    assert down and {o.status for o in down} == {503}
    assert max(o.elapsed_s for o in down) < FAST_S
    create = await timed(durable_broker.post("/v1/sessions", headers=alice, json={}))
    assert create.status == 503 and create.elapsed_s < FAST_S
    refused = await durable_broker.get(f"/v1/sessions/{ids[0]}", headers=alice)
    assert refused.headers["retry-after"] == "5"
    assert refused.headers["content-type"] == "application/problem+json"
    readiness = await timed(durable_broker.get("/readyz"))
    assert readiness.status == 503 and readiness.elapsed_s < FAST_S

    await asyncio.to_thread(durable_redis.restart)
    restarted_at = time.monotonic()
    deadline = restarted_at + 5
    while (await durable_broker.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, "the broker never became ready again"
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.gather(*load)

    recovered = [o for o in outcomes if o.started > restarted_at and o.status == 200]
    assert recovered, "no lookup succeeded after the restart"
    assert recovered[0].started - restarted_at < RECOVERY_S
    settled = [o for o in outcomes if o.started > recovered[0].started + 0.05]
    assert settled and {o.status for o in settled} == {200}
    assert max(o.elapsed_s for o in outcomes) < FAST_S, "a request hung"

    # Nothing the broker acknowledged before the kill is gone.
    for session_id, url in acknowledged.items():
        found = await durable_broker.get(f"/v1/sessions/{session_id}", headers=alice)
        assert found.status_code == 200 and found.json()["url"] == url


async def test_a_create_while_redis_is_down_never_reaches_gladia(
    durable_broker: httpx.AsyncClient,
    durable_redis: RedisServer,
    mint: Headers,
    simulator: Simulator,
) -> None:
    durable_redis.stop()
    response = await durable_broker.post("/v1/sessions", headers=mint("alice"), json={})
    assert response.status_code == 503
    assert simulator.calls() == [], "a billable session was created that nobody will get"


class Stall:
    """A stalled server: DEBUG SLEEP (it still runs what it buffered meanwhile) or CLIENT PAUSE
    (what abandoned clients sent is dropped), started from a connection opened beforehand."""

    def __init__(self, server: RedisServer, how: str, seconds: float) -> None:
        self._server = server
        admin = server.client()
        admin.ping()
        if how == "debug-sleep":
            self._thread: threading.Thread | None = threading.Thread(
                target=admin.execute_command, args=("DEBUG", "SLEEP", seconds), daemon=True
            )
            self._thread.start()
        else:
            admin.client_pause(int(seconds * 1000), all=True)
            self._thread = None
        deadline = time.monotonic() + 2
        while not self._stalled():
            assert time.monotonic() < deadline, "the server never stalled"

    def _stalled(self) -> bool:
        # No retries: redis-py 8 retries a timed-out command ten times by default.
        probe = redis.Redis(
            host="127.0.0.1",
            port=self._server.port,
            socket_timeout=0.2,
            retry=Retry(NoBackoff(), retries=0),
        )
        try:
            probe.ping()
        except redis.TimeoutError:
            return True
        finally:
            probe.close()
        time.sleep(0.01)
        return False

    def wait_until_over(self) -> None:
        if self._thread is not None:
            self._thread.join(5)
        deadline = time.monotonic() + 5
        while self._stalled():
            assert time.monotonic() < deadline, "the server stayed stalled"


@pytest.mark.parametrize("how", ["debug-sleep", "client-pause"])
async def test_a_stalled_redis_costs_at_most_the_socket_timeout(
    fast_settings: Settings,
    redis_server: RedisServer,
    redis_url: str,
    mint: Headers,
    simulator: Simulator,
    how: str,
) -> None:
    alice = mint("alice")
    async with running_broker(fast_settings) as broker:
        [session_id] = await create_sessions(broker, alice, 1)
        stalled = await asyncio.to_thread(Stall, redis_server, how, 1.5)
        lookup, create, ready = await asyncio.gather(
            timed(broker.get(f"/v1/sessions/{session_id}", headers=alice)),
            timed(broker.post("/v1/sessions", headers=alice, json={})),
            timed(broker.get("/readyz")),
        )
        for outcome in (lookup, create, ready):
            assert outcome.status == 503
            assert outcome.elapsed_s < FAULT_SOCKET_TIMEOUT_S + 0.5, (
                "latency beyond the socket timeout"
            )
        await asyncio.to_thread(stalled.wait_until_over)
        assert (await broker.get(f"/v1/sessions/{session_id}", headers=alice)).status_code == 200
    # Creates fail closed: the one that met the stall never reached Gladia.
    assert len(simulator.calls()) == 1
    # Whatever the stalled admission wrote landed once: one lease and one window entry at most
    # beyond the first session's.
    client = redis_server.client()
    owner = _owner("alice")
    assert client.zcard(subject_leases_key(owner)) <= 2
    assert client.zcard(subject_creates_key(owner)) <= 2
    indexed = client.zrange(session_keys(owner, session_id).index, 0, -1)
    assert len(indexed) == len(set(indexed)) == 1


def _owner(subject: str) -> str:
    from broker.identity.credentials import Subject

    return Subject(subject).key


# Every write the broker makes to Redis, applied while the server stalls: each lands at most
# once, whatever the client saw (its client never retries, and every script is keyed by a
# request or session id). New writes join this list.
@dataclass(frozen=True)
class StalledWrite:
    name: str
    apply: Callable[[aioredis.Redis, Settings], Awaitable[object]]
    count: Callable[[redis.Redis], int]
    # The address counter fails open (a warning, no error): it must not block the request.
    fails_open: bool = False


async def _incr(client: aioredis.Redis, settings: Settings) -> object:
    return await client.incr("probe:counter")


async def _save(client: aioredis.Redis, settings: Settings) -> object:
    record = session_record("s-1", "owner-a", "r-1", url="wss://api.gladia.io/v2/live?token=t")
    await SessionStore(client, settings).save(record)
    return None


async def _admit(client: aioredis.Redis, settings: Settings) -> object:
    await Limits(client, settings).admit("owner-a", "request-1")
    return None


async def _confirm(client: aioredis.Redis, settings: Settings) -> object:
    # Confirms the lease admitted before the stall (see the `prepare` of this write).
    await confirm_leases(client, Limits(client, settings), "owner-a", "request-1", "s-1")
    return None


async def _miss(client: aioredis.Redis, settings: Settings) -> object:
    await Limits(client, settings).record_miss("203.0.113.9", "attempt-1")
    return None


def _members(key: str) -> Callable[[redis.Redis], int]:
    return lambda c: int(c.zcard(key))


STALLED_WRITES = [
    StalledWrite(
        "a counter on the broker's client", _incr, lambda c: int(c.get("probe:counter") or 0)
    ),
    StalledWrite("a session save", _save, _members("broker:{owner-a}:sessions")),
    StalledWrite("a subject's lease", _admit, _members(subject_leases_key("owner-a"))),
    StalledWrite("a subject's create window", _admit, _members(subject_creates_key("owner-a"))),
    StalledWrite("an account lease", _admit, _members(ACCOUNT_LEASES_KEY)),
    StalledWrite("a lease confirmation", _confirm, _members(subject_leases_key("owner-a"))),
    StalledWrite(
        "an address miss", _miss, _members(address_misses_key("203.0.113.9")), fails_open=True
    ),
]


@pytest.mark.parametrize("how", ["debug-sleep", "client-pause"])
@pytest.mark.parametrize("write", STALLED_WRITES, ids=lambda w: w.name)
async def test_a_write_during_a_stall_is_applied_at_most_once(
    fast_settings: Settings,
    redis_server: RedisServer,
    redis_url: str,
    write: StalledWrite,
    how: str,
) -> None:
    client = open_redis(fast_settings)
    try:
        if write.apply is _confirm:
            await _admit(client, fast_settings)
        stalled = await asyncio.to_thread(Stall, redis_server, how, 1.0)
        started = time.monotonic()
        if write.fails_open:
            await write.apply(client, fast_settings)
        else:
            with pytest.raises(RedisError):
                await write.apply(client, fast_settings)
        assert time.monotonic() - started < FAULT_SOCKET_TIMEOUT_S + 0.5
        await asyncio.to_thread(stalled.wait_until_over)
    finally:
        await client.aclose()
    assert write.count(redis_server.client()) <= 1
