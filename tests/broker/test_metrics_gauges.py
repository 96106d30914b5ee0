"""The gauges read at each scrape: job queue depths (Redis's count), open event streams (this
instance's), and a scrape that answers when their sources do not."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from broker.events.intake import RELAY_QUEUE, RESULT_QUEUE
from broker.observability import metrics as metrics_module
from broker.observability.metrics import Metrics, QueueCounts
from broker.settings import Settings
from broker.store.connection import open_redis
from broker.store.events import DeadLetter, EventStore
from broker.web.lifespan import _queue_counts
from broker.web.streams import StreamSlots
from tests.broker.conftest import BrokerFactory, Simulator
from tests.broker.events.conftest import (
    Headers,
    callback_body,
    capability_path,
    follow,
    serving,
    wait_for,
)
from tests.broker.test_metrics import parse, value


def letter(member: str) -> DeadLetter:
    session_id = member.partition(":")[2]
    return DeadLetter(member, session_id, "1-0", "live.transcript", 3, "http_503", 1)


async def test_a_queues_depth_counts_work_due_and_backing_off_and_leaves_dead_letters_out(
    settings: Settings,
) -> None:
    client = open_redis(settings)
    events = EventStore(client, settings)
    metrics = Metrics()
    for queue in (RELAY_QUEUE, RESULT_QUEUE):
        metrics.track_job_queue(queue, _queue_counts(events, queue))
    try:
        for session in ("s1", "s2", "s3", "s4"):
            await events.mark(RELAY_QUEUE, f"alice:{session}")
        await events.retry_later(RELAY_QUEUE, "alice:s3", 60.0, 600.0)
        await events.dead_letter(RELAY_QUEUE, letter("alice:s4"))
        await events.mark(RESULT_QUEUE, "bob:s5")
        samples = parse((await metrics.render()).decode())
    finally:
        await client.aclose()
    assert value(samples, "broker_job_queue_depth", queue=RELAY_QUEUE) == 3
    assert value(samples, "broker_job_queue_retrying", queue=RELAY_QUEUE) == 1
    assert value(samples, "broker_job_queue_depth", queue=RESULT_QUEUE) == 1
    assert value(samples, "broker_job_queue_retrying", queue=RESULT_QUEUE) == 0


async def test_a_broker_exports_the_depth_of_the_queues_it_drains(
    broker_factory: BrokerFactory,
) -> None:
    async with broker_factory() as broker:
        samples = parse((await broker.get("/metrics")).text)
    depths = {
        dict(labels)["queue"] for (name, labels) in samples if name == "broker_job_queue_depth"
    }
    assert depths == {RESULT_QUEUE}, "the relay's queue is drained only with the relay on"
    assert value(samples, "broker_job_queue_depth", queue=RESULT_QUEUE) == 0


async def test_open_event_streams_are_counted_while_they_are_open(
    settings: Settings, mint: Headers, simulator: Simulator
) -> None:
    async with serving(replace(settings, sse_heartbeat_s=0.2)) as broker:

        async def streams_open() -> float:
            samples = parse((await broker.client.get("/metrics")).text)
            return value(samples, "broker_sse_streams_open")

        alice = mint("alice")
        assert await streams_open() == 0
        session_id = (await broker.client.post("/v1/sessions", headers=alice, json={})).json()["id"]
        lines: list[str] = []
        follower = asyncio.create_task(
            follow(broker, f"/v1/sessions/{session_id}/events", alice, lines)
        )

        async def heartbeat_seen() -> bool:
            return any(line.startswith(":") for line in lines)

        await wait_for(heartbeat_seen)
        assert await streams_open() == 1
        end = callback_body(session_id, "live.end_session")
        path = capability_path(simulator, session_id)
        assert (await broker.client.post(path, json=end)).status_code == 204
        await asyncio.wait_for(follower, timeout=10)

        async def all_closed() -> bool:
            return await streams_open() == 0

        await wait_for(all_closed)


async def test_the_stream_gauge_reads_the_slots_at_each_scrape() -> None:
    metrics, slots = Metrics(), StreamSlots(limit=2)
    metrics.track_open_streams(lambda: slots.open)
    slots.take(retry_after_s=5)
    slots.take(retry_after_s=5)
    assert metrics.registry.get_sample_value("broker_sse_streams_open") == 2
    slots.give_back()
    assert metrics.registry.get_sample_value("broker_sse_streams_open") == 1


async def test_a_scrape_answers_when_every_source_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_module, "SAMPLE_TIMEOUT_S", 0.05)
    never = asyncio.Event()

    async def hangs() -> int:
        await never.wait()
        return 1

    async def hangs_too() -> QueueCounts:
        await never.wait()
        return QueueCounts(waiting=1, retrying=1)

    metrics = Metrics()
    metrics.track_live_sessions(hangs)
    metrics.track_relay_dead_letters(hangs)
    metrics.track_job_queue(RESULT_QUEUE, hangs_too)
    samples = parse((await metrics.render()).decode())
    # Each source was given up on (and counted), and the gauges kept their last values.
    assert value(samples, "broker_redis_errors_total", error="TimeoutError") == 3
    assert value(samples, "broker_live_sessions") == 0
    assert value(samples, "broker_job_queue_depth", queue=RESULT_QUEUE) == 0


async def test_tracking_a_gauge_again_replaces_its_source() -> None:
    metrics = Metrics()

    async def one() -> int:
        return 1

    async def two() -> int:
        return 2

    metrics.track_live_sessions(one)
    metrics.track_live_sessions(two)
    samples = parse((await metrics.render()).decode())
    assert value(samples, "broker_live_sessions") == 2
