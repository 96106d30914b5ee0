"""Fixtures shared by every test area: a real redis-server, and a real Redis Cluster, per run."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.broker.conftest import CANARIES
from tests.support.redis_topologies import RedisClusterNodes, running_redis_cluster
from tests.support.servers import RedisServer, running_redis_server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the whole run; skipped locally, a failure in CI, when missing."""
    with running_redis_server() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The real Redis, emptied before the test that asks for it."""
    redis_server.client().flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterNodes]:
    """A real three-master Redis Cluster on loopback, started once for the run."""
    with running_redis_cluster(masters=3) as cluster:
        yield cluster


@pytest.fixture
def redis_cluster_url(redis_cluster: RedisClusterNodes) -> str:
    """The cluster's seed URL (use with REDIS_CLUSTER=true), emptied before the test."""
    redis_cluster.flushall()
    return redis_cluster.url


class _CanaryWatch(logging.Handler):
    """Looks at every record of the run, as made (redacted), for the canary secrets."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage() + (record.exc_text or "") + str(getattr(record, "fields", ""))
        self.leaks.extend(
            f"{record.name}: {canary[:12]}..." for canary in CANARIES if canary in text
        )


@pytest.fixture(scope="session", autouse=True)
def no_canary_in_any_log_record() -> Iterator[None]:
    """After the whole suite, no record logged by anything contains a canary secret."""
    watch = _CanaryWatch()
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(watch)
    root.setLevel(logging.DEBUG)
    yield
    root.removeHandler(watch)
    root.setLevel(previous_level)
    assert not watch.leaks, f"secrets reached the log: {watch.leaks[:5]}"
