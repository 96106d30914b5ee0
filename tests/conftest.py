"""Fixtures shared by every test area: a real redis-server for the run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
