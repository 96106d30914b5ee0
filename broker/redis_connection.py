"""Opens the Redis client the broker runs on: a real server, or the embedded development store."""

from __future__ import annotations

import logging

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from broker.settings import Settings

logger = logging.getLogger("broker.redis")


def open_redis(settings: Settings) -> redis.Redis:
    """A client with every timeout explicit and no silent retries of writes."""
    if not settings.redis_url:
        return _embedded_redis()
    pool = redis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        # A burst queues this long for a connection, then fails cleanly (503) instead of piling up.
        timeout=settings.redis_pool_timeout_s,
        socket_timeout=settings.redis_socket_timeout_s,
        socket_connect_timeout=settings.redis_connect_timeout_s,
        socket_keepalive=True,
        health_check_interval=15,
        client_name="gladia-broker",
        decode_responses=True,
        # A timed-out write may still have applied; retrying INCR or XADD could apply it twice.
        retry=Retry(NoBackoff(), retries=0),
    )
    return redis.Redis(connection_pool=pool)


def _embedded_redis() -> redis.Redis:
    import fakeredis

    logger.warning(
        "REDIS_URL is not set: using an in-process store. It is single-process only: "
        "sessions are lost on restart and invisible to other instances."
    )
    client: redis.Redis = fakeredis.FakeAsyncRedis(decode_responses=True)
    return client
