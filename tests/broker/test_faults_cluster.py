"""Redis Cluster failing over and resharding under load: a primary handed over by CLUSTER
FAILOVER, a primary killed and replaced by its replica, slots holding live sessions moved to
another primary. Meanwhile every answer is a success or a fast 503 with Retry-After; afterwards
every acknowledged session is still there; the time to recover is measured and printed.

Real redis-server processes throughout: three primaries and a replica each, with a short node
timeout so that a killed primary is replaced in about two seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot
from redis.exceptions import RedisError

from broker.identity.credentials import Subject
from broker.settings import Settings
from broker.simulator import SimulatorConfig, create_simulator_app
from broker.store.connection import open_redis
from broker.store.keys import ACCOUNT_LEASES_KEY, subject_leases_key
from tests.broker.conftest import CANARY_GLADIA_KEY, Simulator, running_broker
from tests.support.redis_topologies import ReplicatedCluster, running_replicated_cluster
from tests.support.servers import RedisServer, serve_in_thread

Headers = Callable[[str], dict[str, str]]

NODE_TIMEOUT_MS = 1000
# A refusal costs a socket timeout, or redis-py's 0.25 s pause and a topology refresh after
# CLUSTERDOWN (measured: up to 0.7 s on two busy CPUs); no answer at all may hang.
REFUSAL_S = 1.5
NO_HANG_S = 3.0
# Generous bounds on the time from the fault to the first success after the last failure.
MANUAL_FAILOVER_RECOVERY_S = 3.0
CRASH_RECOVERY_S = NODE_TIMEOUT_MS / 1000 + 4.0
RESHARD_RECOVERY_S = 3.0
DEADLINE_S = 15.0

# Spread over the three primaries (the slots are fixed: users' tags, redis-cli's ranges).
USERS = ("alice", "bob", "carol", "dave", "erin", "frank")
SESSIONS_PER_USER = 3
CREATORS = 2

ASK_NOT_FOLLOWED = (
    "redis-py's async cluster client sends ASKING on one pooled connection of the new primary "
    "and the command on the next one, so the new primary answers MOVED back to the old one "
    "until the redirections run out (ClusterError: TTL exhausted): with an even number of "
    "idle connections to that primary, every command on a key already moved fails (a 503) "
    "until the slot is handed over"
)
ASK_NOT_FOLLOWED_IN_MULTI = (
    "redis-py's cluster pipeline does not follow an ASK redirection inside MULTI: a "
    "transaction on keys already moved fails with AskError (a 503) until the slot is handed over"
)


@pytest.fixture(scope="module")
def simulator_server() -> Iterator[Simulator]:
    """A simulated Gladia account whose concurrency never refuses the load's creates."""
    config = SimulatorConfig(
        api_key=CANARY_GLADIA_KEY, idle_timeout_s=5.0, max_live_sessions=10_000
    )
    app = create_simulator_app(config)
    with serve_in_thread(app) as base_url:
        yield Simulator(base_url=base_url, state=app.state.simulator)


@pytest.fixture
def replicated_cluster() -> Iterator[ReplicatedCluster]:
    """A cluster of its own per test: each one moves roles or slots for good."""
    with running_replicated_cluster(primaries=3, node_timeout_ms=NODE_TIMEOUT_MS) as cluster:
        yield cluster


@pytest.fixture
def redis_topology(replicated_cluster: ReplicatedCluster) -> tuple[str, bool]:
    """Faults are injected into the cluster with replicas: these tests run on it alone."""
    return replicated_cluster.url, True


@pytest.fixture
async def load(fast_settings: Settings, mint: Headers) -> AsyncIterator[Load]:
    """The broker on the cluster, each user holding a few sessions, the load not yet begun."""
    async with running_broker(fast_settings) as broker:
        load = Load(broker, {user: mint(user) for user in USERS})
        await load.seed(SESSIONS_PER_USER)
        yield load
        await load.stop()


def tag_slot(tag: str) -> int:
    return key_slot(f"{{{tag}}}".encode())


def slot_of(user: str) -> int:
    """The slot of every key of `user`: they all carry the owner's hash tag."""
    return key_slot(subject_leases_key(Subject(user).key).encode())


ACCOUNT_SLOT = key_slot(ACCOUNT_LEASES_KEY.encode())


@dataclass(frozen=True)
class Answer:
    user: str
    started: float
    ended: float
    status: int
    retry_after: str | None
    # The problem's title, for a problem+json answer.
    title: str | None

    @property
    def ok(self) -> bool:
        return self.status in (200, 201)


class Load:
    """Users reconnecting to their sessions and creating new ones, every answer recorded."""

    def __init__(self, broker: httpx.AsyncClient, headers: dict[str, dict[str, str]]) -> None:
        self.broker = broker
        self.headers = headers
        self.answers: list[Answer] = []
        # Every create answered 201: session id → (owner, url).
        self.acknowledged: dict[str, tuple[str, str]] = {}
        self._sessions: dict[str, list[str]] = {user: [] for user in headers}
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def seed(self, per_user: int) -> None:
        for user in self.headers:
            for _ in range(per_user):
                response = await self._create(user)
                assert response.status_code == 201, response.text

    def start(self) -> None:
        self._tasks += [asyncio.create_task(self._reconnecting(user)) for user in self.headers]
        self._tasks += [asyncio.create_task(self._creating(n)) for n in range(CREATORS)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        self._tasks = []

    async def answered(self, count: int) -> None:
        """Wait until `count` more answers have come back."""
        target = len(self.answers) + count
        deadline = time.monotonic() + DEADLINE_S
        while len(self.answers) < target:
            assert time.monotonic() < deadline, "the load stopped answering"
            await asyncio.sleep(0.005)

    def answered_from_thread(self, count: int) -> None:
        """`answered`, for code running in a thread beside the event loop (a resharding)."""
        target = len(self.answers) + count
        deadline = time.monotonic() + DEADLINE_S
        while len(self.answers) < target:
            assert time.monotonic() < deadline, "the load stopped answering"
            time.sleep(0.002)

    async def served_again(self, since: float) -> None:
        """Wait until every user has had a success asked after `since`."""
        deadline = time.monotonic() + DEADLINE_S
        while True:
            served = {a.user for a in self.answers if a.ok and a.started > since}
            if served >= set(self.headers):
                return
            assert time.monotonic() < deadline, f"never served again: {set(self.headers) - served}"
            await asyncio.sleep(0.01)

    async def _timed(self, user: str, call: Awaitable[httpx.Response]) -> httpx.Response:
        started = time.monotonic()
        response = await call
        ended = time.monotonic()
        problem = response.headers.get("content-type") == "application/problem+json"
        title = response.json().get("title") if problem else None
        retry_after = response.headers.get("retry-after")
        self.answers.append(Answer(user, started, ended, response.status_code, retry_after, title))
        return response

    async def _create(self, user: str) -> httpx.Response:
        call = self.broker.post("/v1/sessions", headers=self.headers[user], json={})
        response = await self._timed(user, call)
        if response.status_code == 201:
            session = response.json()
            self.acknowledged[session["id"]] = (user, session["url"])
            self._sessions[user].append(session["id"])
        return response

    async def _reconnecting(self, user: str) -> None:
        turn = 0
        while not self._stop.is_set():
            sessions = self._sessions[user]
            session_id = sessions[turn % len(sessions)]
            turn += 1
            call = self.broker.get(f"/v1/sessions/{session_id}", headers=self.headers[user])
            await self._timed(user, call)
            await asyncio.sleep(0.005)

    async def _creating(self, worker: int) -> None:
        turn = worker
        while not self._stop.is_set():
            await self._create(USERS[turn % len(USERS)])
            turn += 1
            await asyncio.sleep(0.02)


def check_answers(load: Load) -> None:
    """Every answer a success or a fast 503 (the store's) with Retry-After: never a hang, a
    500 or a 4xx."""
    statuses = Counter(a.status for a in load.answers)
    assert set(statuses) <= {200, 201, 503}, statuses
    refused = [a for a in load.answers if a.status == 503]
    for answer in refused:
        assert answer.retry_after == "5"
        assert answer.title == "Session store unavailable"
    slowest_refusal = max((a.ended - a.started for a in refused), default=0.0)
    assert slowest_refusal < REFUSAL_S, f"a 503 took {slowest_refusal:.3f} s"
    slowest = max(a.ended - a.started for a in load.answers)
    assert slowest < NO_HANG_S, f"an answer took {slowest:.3f} s"


def recovery_s(load: Load, users: list[str], fault_at: float) -> float:
    """From the fault to the end of the first success of `users` asked after their last
    failure (after the fault itself when they met none)."""
    after = [a for a in load.answers if a.user in users and a.started >= fault_at]
    last_failure = max((a.started for a in after if not a.ok), default=fault_at)
    return min(a.ended for a in after if a.ok and a.started >= last_failure) - fault_at


async def check_no_session_lost(load: Load) -> None:
    """Every create the broker acknowledged is found again, with the same URL. A 503 (a busy
    machine can exceed the short socket timeout) says nothing either way: asked again."""

    async def find(session_id: str, user: str) -> tuple[int, str | None]:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            path = f"/v1/sessions/{session_id}"
            found = await load.broker.get(path, headers=load.headers[user])
            if found.status_code != 503 or time.monotonic() > deadline:
                return found.status_code, found.json().get("url")
            await asyncio.sleep(0.05)

    items = list(load.acknowledged.items())
    found = [await find(session_id, user) for session_id, (user, _) in items]
    lost = [
        f"{session_id} ({status})"
        for (session_id, (_, url)), (status, found_url) in zip(items, found, strict=True)
        if status != 200 or found_url != url
    ]
    assert lost == [], f"{len(lost)} of {len(items)} acknowledged sessions lost: {lost}"


def users_on(cluster: ReplicatedCluster, primary: RedisServer) -> list[str]:
    return [user for user in USERS if cluster.serving(slot_of(user)).port == primary.port]


def report(what: str, recovery: float, load: Load, fault_at: float) -> None:
    refused = [a for a in load.answers if a.status == 503]
    window = "none"
    if refused:
        first, last = min(a.started for a in refused), max(a.ended for a in refused)
        window = f"{first - fault_at:.2f}..{last - fault_at:.2f} s"
    slowest_refusal = max((a.ended - a.started for a in refused), default=0.0)
    slowest = max(a.ended - a.started for a in load.answers)
    statuses = dict(sorted(Counter(a.status for a in load.answers).items()))
    print(
        f"\n{what}: recovered {recovery * 1000:.0f} ms after the fault; answers {statuses}, "
        f"503s at {window} after it, slowest 503 {slowest_refusal * 1000:.0f} ms, slowest "
        f"answer {slowest * 1000:.0f} ms; {len(load.acknowledged)} sessions acknowledged"
    )


async def test_a_manual_failover_under_load_loses_nothing_and_recovers_quickly(
    load: Load, replicated_cluster: ReplicatedCluster
) -> None:
    primary = replicated_cluster.serving(slot_of("alice"))
    affected = users_on(replicated_cluster, primary)
    load.start()
    await load.answered(50)

    fault_at = time.monotonic()
    promoted = await asyncio.to_thread(replicated_cluster.fail_over, primary)
    await load.served_again(since=time.monotonic())
    await load.answered(50)
    await load.stop()

    assert replicated_cluster.serving(slot_of("alice")).port == promoted.port
    recovery = recovery_s(load, affected, fault_at)
    report("manual failover", recovery, load, fault_at)
    check_answers(load)
    assert recovery < MANUAL_FAILOVER_RECOVERY_S
    await check_no_session_lost(load)


async def test_a_killed_primary_is_replaced_meanwhile_503s_are_fast_and_nothing_is_lost(
    load: Load, replicated_cluster: ReplicatedCluster
) -> None:
    primary = replicated_cluster.serving(slot_of("bob"))
    affected = users_on(replicated_cluster, primary)
    load.start()
    await load.answered(50)

    fault_at = time.monotonic()
    promoted = await asyncio.to_thread(replicated_cluster.crash, primary)
    await load.served_again(since=time.monotonic())
    await load.answered(50)
    await load.stop()

    assert replicated_cluster.serving(slot_of("bob")).port == promoted.port
    recovery = recovery_s(load, affected, fault_at)
    report("killed primary", recovery, load, fault_at)
    check_answers(load)
    # The outage was real: the dead primary's users were refused meanwhile.
    assert any(not a.ok for a in load.answers if a.user in affected and a.started > fault_at)
    assert recovery < CRASH_RECOVERY_S
    assert (await load.broker.get("/readyz")).status_code == 200
    await check_no_session_lost(load)


async def test_resharding_live_sessions_slots_under_load_loses_nothing(
    load: Load, replicated_cluster: ReplicatedCluster
) -> None:
    source = replicated_cluster.serving(slot_of("alice"))
    target = next(p for p in replicated_cluster.primaries() if p.port != source.port)
    account_source = replicated_cluster.serving(ACCOUNT_SLOT)
    account_target = next(
        p for p in replicated_cluster.primaries() if p.port != account_source.port
    )
    load.start()
    await load.answered(50)

    def reshard() -> None:
        # Alice's sessions, and the account's leases that every create touches, key by key.
        def between_keys() -> None:
            load.answered_from_thread(3)

        replicated_cluster.move_slot(slot_of("alice"), target, between_keys)
        if slot_of("alice") != ACCOUNT_SLOT:
            replicated_cluster.move_slot(ACCOUNT_SLOT, account_target, between_keys)

    fault_at = time.monotonic()
    await asyncio.to_thread(reshard)
    await load.served_again(since=time.monotonic())
    await load.answered(50)
    await load.stop()

    assert replicated_cluster.serving(slot_of("alice")).port == target.port
    assert target.client().cluster("COUNTKEYSINSLOT", slot_of("alice")) > 0
    recovery = recovery_s(load, ["alice"], fault_at)
    report("resharding", recovery, load, fault_at)
    check_answers(load)
    assert recovery < RESHARD_RECOVERY_S
    await check_no_session_lost(load)


class HalfMovedSlot:
    """The slot of the `{alice}` tag in the middle of a resharding: `moved` keys already on
    the new primary, `target_tag` a hash tag that the new primary serves."""

    def __init__(self, cluster: ReplicatedCluster, moved: list[str]) -> None:
        self._cluster = cluster
        self._slot = tag_slot("alice")
        self._moved = moved
        source = cluster.serving(self._slot)
        self._target = next(p for p in cluster.primaries() if p.port != source.port)
        self.target_tag = next(
            tag
            for tag in (f"warm-{n}" for n in range(10_000))
            if cluster.serving(tag_slot(tag)).port == self._target.port
        )

    def begin(self) -> None:
        source = self._cluster.begin_moving(self._slot, self._target)
        self._cluster.migrate(source, self._target, self._moved)


@pytest.mark.xfail(strict=True, reason=ASK_NOT_FOLLOWED)
async def test_a_key_already_moved_mid_resharding_is_served_by_its_new_primary(
    fast_settings: Settings, replicated_cluster: ReplicatedCluster
) -> None:
    moved = ["broker:{alice}:moved-1", "broker:{alice}:moved-2"]
    half_moved = HalfMovedSlot(replicated_cluster, moved)
    client = open_redis(fast_settings)
    script = client.register_script("return redis.call('GET', KEYS[1])")
    try:
        await client.set(moved[0], "stored", ex=60)
        await client.set(moved[1], "stored", ex=60)
        await script(keys=[moved[0]])  # loaded on every primary
        half_moved.begin()
        failures: list[str] = []
        # However many connections the broker holds to the new primary at the time.
        for idle in range(1, 5):
            await asyncio.gather(
                *(client.get(f"{{{half_moved.target_tag}}}:warm") for _ in range(idle))
            )
            operations: dict[str, Callable[[], Awaitable[Any]]] = {
                "GET": lambda: client.get(moved[0]),
                "a script": lambda: script(keys=[moved[0]]),
                "a pipeline": lambda: _pipeline(client, moved, transaction=False),
            }
            for name, operation in operations.items():
                try:
                    reply = await operation()
                except RedisError as exc:
                    failures.append(f"{name} after {idle} idle: {type(exc).__name__} {exc}")
                else:
                    assert reply in ("stored", ["stored", "stored"]), reply
        assert failures == []
    finally:
        await client.aclose()


@pytest.mark.xfail(strict=True, reason=ASK_NOT_FOLLOWED_IN_MULTI)
async def test_a_transaction_on_keys_already_moved_mid_resharding_is_served(
    fast_settings: Settings, replicated_cluster: ReplicatedCluster
) -> None:
    moved = ["broker:{alice}:moved-1", "broker:{alice}:moved-2"]
    half_moved = HalfMovedSlot(replicated_cluster, moved)
    client = open_redis(fast_settings)
    try:
        await client.set(moved[0], "stored", ex=60)
        await client.set(moved[1], "stored", ex=60)
        half_moved.begin()
        assert await _pipeline(client, moved, transaction=True) == ["stored", "stored"]
    finally:
        await client.aclose()


async def _pipeline(client: aioredis.Redis, keys: list[str], *, transaction: bool) -> Any:
    async with client.pipeline(transaction=transaction) as pipe:
        for key in keys:
            pipe.get(key)
        return await pipe.execute()
