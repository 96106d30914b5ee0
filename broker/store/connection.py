"""Opens the Redis client the broker runs on: one server, Sentinel, Cluster, or the embedded store.

`REDIS_URL` picks the topology:
- `redis://[user:password@]host:port/db` and `rediss://…` (TLS): one server;
- the same URL with `REDIS_CLUSTER=true`: a seed node of a Redis Cluster;
- `redis+sentinel://[user:password@]host:port[,host:port…]/service_name[/db]` (or
  `rediss+sentinel://…`): the master that the Sentinels name, followed across failovers.
Query parameters (e.g. `?ssl_ca_certs=/etc/ssl/redis-ca.pem`) go to every connection.

Every client has the same deliberate behaviour: explicit timeouts, a health check on idle
connections, and no retries, because a timed-out write may still have applied and a retried
INCR or XADD would apply twice (security notes §4.3). A failed command answers 503.
On one server and on Sentinel's master, scripts are pipelined down a connection of their own
(`broker.store.pipelining`), under the same rules.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import redis.asyncio as redis
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, SlotNotCoveredError

from broker.errors import RedisUrlError, SettingsError
from broker.settings import Settings
from broker.store.pipelining import ScriptPipeline

logger = logging.getLogger("broker.redis")

CLIENT_NAME = "gladia-broker"
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelUrl:
    """What a `redis+sentinel://` URL says: where the Sentinels are and which master to use."""

    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    options: dict[str, str] = field(default_factory=dict)


def parse_sentinel_url(url: str) -> SentinelUrl:
    """Read `redis+sentinel://[user:password@]host:port[,host:port…]/service_name[/db]`."""
    scheme, separator, rest = url.partition("://")
    if scheme not in SENTINEL_SCHEMES or not separator:
        raise RedisUrlError("a Sentinel URL starts with redis+sentinel:// or rediss+sentinel://")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, _, hosts = netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    sentinels = tuple(_host_port(item) for item in hosts.split(",") if item)
    if not sentinels:
        raise RedisUrlError("a Sentinel URL names at least one Sentinel host")
    parts = [unquote(part) for part in path.split("/") if part]
    if not parts or len(parts) > 2:
        raise RedisUrlError("a Sentinel URL's path is /service_name or /service_name/db")
    if len(parts) == 2 and not parts[1].isdigit():
        raise RedisUrlError("the database in a Sentinel URL is a number")
    return SentinelUrl(
        sentinels=sentinels,
        service_name=parts[0],
        db=int(parts[1]) if len(parts) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
        tls=scheme == "rediss+sentinel",
        options=dict(parse_qsl(query)),
    )


def _host_port(item: str) -> tuple[str, int]:
    if item.startswith("["):  # [IPv6]:port
        host, _, port = item[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "")
    if not host or (port and not port.isdigit()):
        raise RedisUrlError("each Sentinel is host:port")
    return host, int(port) if port else DEFAULT_SENTINEL_PORT


def open_redis(settings: Settings) -> redis.Redis:
    """The client for `REDIS_URL`'s topology, every timeout explicit and no silent retries."""
    if not settings.redis_url:
        return _embedded_redis()
    scheme = urlsplit(settings.redis_url).scheme
    if scheme in SENTINEL_SCHEMES:
        return _sentinel_redis(settings, parse_sentinel_url(settings.redis_url))
    if settings.redis_cluster:
        return _cluster_redis(settings)
    pool = redis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        # A burst queues this long for a connection, then fails cleanly (503) instead of piling up.
        timeout=settings.redis_pool_timeout_s,
        **_connection_options(settings),
    )
    # The client owns the pool, so closing it at shutdown closes its connections too.
    return NodeClient.from_pool(pool)


class NodeClient(redis.Redis):
    """A client of one server (or of the master Sentinel names) whose scripts are pipelined.

    `EVALSHA` without options goes down the `ScriptPipeline`'s connection, shared by every
    script in flight, and so does `SCRIPT LOAD`: a script is loaded on the server that runs it,
    which after a failover may not be the one a pooled connection is still on. Every other
    command goes through the pool as redis-py sends it.
    """

    _scripts: ScriptPipeline | None = None

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if not options and args[0] == "EVALSHA":
            return await self._script_pipeline().execute(*args)
        if not options and args[0] == "SCRIPT LOAD":
            sha = await self._script_pipeline().execute("SCRIPT", "LOAD", *args[1:])
            return sha.decode() if isinstance(sha, bytes) else sha  # as redis-py answers it
        return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    def _script_pipeline(self) -> ScriptPipeline:
        if self._scripts is None:
            self._scripts = ScriptPipeline(self.connection_pool)
        return self._scripts

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if self._scripts is not None:
            await self._scripts.aclose()
        await super().aclose(close_connection_pool)


def _connection_options(settings: Settings) -> dict[str, Any]:
    return {
        "socket_timeout": settings.redis_socket_timeout_s,
        "socket_connect_timeout": settings.redis_connect_timeout_s,
        "socket_keepalive": True,
        # An idle connection is checked with PING before use once it is this old, so a
        # connection a load balancer or failover silently cut is replaced instead of failing.
        "health_check_interval": settings.redis_health_check_interval_s,
        "client_name": CLIENT_NAME,
        "decode_responses": True,
        # A timed-out write may still have applied; retrying INCR or XADD could apply it twice.
        "retry": Retry(NoBackoff(), retries=0),
    }


class ClusterClient(RedisCluster):
    """RedisCluster behaving, where the broker relies on it, as the other topologies do.

    - An unreachable cluster, or a slot no master serves, raises redis' ConnectionError (a
      RedisError, answered 503) instead of RedisClusterException, which is not a RedisError.
    - A burst waits up to `pool_timeout_s` for one of `max_in_flight` slots, then fails with
      ConnectionError, as the blocking pool of a single server does; redis-py's cluster pool
      would refuse at once past `max_connections` per node.
    """

    def __init__(self, *, max_in_flight: int, pool_timeout_s: float, **options: Any) -> None:
        super().__init__(**options)
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._pool_timeout_s = pool_timeout_s

    @asynccontextmanager
    async def command_slot(self) -> AsyncIterator[None]:
        """One of the bounded slots for a command or a pipeline, errors made RedisErrors."""
        try:
            async with asyncio.timeout(self._pool_timeout_s):
                await self._in_flight.acquire()
        except TimeoutError:
            raise RedisConnectionError("No connection available.") from None
        try:
            if self._initialize:
                # Learn the topology before anything else runs: redis-py 8.1 lets concurrent
                # first commands share the seed node's connections while it initializes.
                await self.initialize()
            yield
        except SlotNotCoveredError as exc:
            raise RedisConnectionError(f"Redis Cluster does not serve this slot: {exc}") from exc
        finally:
            self._in_flight.release()

    async def initialize(
        self,
        additional_startup_nodes_info: list[tuple[str, int]] | None = None,
        last_failed_node_name: str | None = None,
    ) -> RedisCluster:
        try:
            return await super().initialize(additional_startup_nodes_info, last_failed_node_name)
        except RedisClusterException as exc:
            raise RedisConnectionError(f"Redis Cluster cannot be reached: {exc}") from exc

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.command_slot():
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        if shard_hint:
            raise RedisClusterException("shard_hint is deprecated in cluster mode")
        # Only mypy sees an abstract member: `_event_dispatcher`, which redis-py's typed command
        # mixins declare and ClusterPipeline never sets (RedisCluster.pipeline builds it alike).
        return _BoundedClusterPipeline(self, transaction)  # type: ignore[abstract]


class _BoundedClusterPipeline(ClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        client = self.cluster_client
        assert isinstance(client, ClusterClient)
        async with client.command_slot():
            return await super().execute(raise_on_error, allow_redirections)


def _cluster_redis(settings: Settings) -> redis.Redis:
    assert settings.redis_url is not None
    options = _connection_options(settings)
    cluster = ClusterClient.from_url(
        settings.redis_url,
        max_in_flight=settings.redis_max_connections,
        pool_timeout_s=settings.redis_pool_timeout_s,
        # Per node; the in-flight bound above keeps a process below it.
        max_connections=settings.redis_max_connections,
        require_full_coverage=True,
        # MOVED and ASK redirections are always followed (the command was refused, not run);
        # no retry after a timeout or a dropped connection, for the same reason as above.
        retry=options.pop("retry"),
        **options,
    )
    logger.info("redis: cluster, seeded from %s", _where(settings.redis_url))
    # Every key one operation touches shares a hash tag, so the cluster client serves the
    # store's single-slot commands, transactions and scripts as a single server would.
    return cast(redis.Redis, cluster)


class _BlockingSentinelPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """The Sentinel-managed pool (follows the master) with the blocking pool's bounded wait."""


class _SentinelMasterRedis(NodeClient):
    """The master's client; closing it closes the connections to the Sentinels too."""

    sentinel_manager: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinel_manager is not None:
            for sentinel_client in self.sentinel_manager.sentinels:
                await sentinel_client.aclose()


def _sentinel_redis(settings: Settings, address: SentinelUrl) -> redis.Redis:
    options = _connection_options(settings)
    tls = {"ssl": True} if address.tls else {}
    sentinel_password = settings.redis_sentinel_password
    # One mapping of keyword arguments: unpacked one by one, mypy would match them against
    # Sentinel's own keyword parameters (min_other_sentinels, force_master_ip).
    master_kwargs: dict[str, Any] = {
        "username": address.username,
        "password": address.password,
        "db": address.db,
        **tls,
        **address.options,
        **options,
    }
    sentinel = Sentinel(
        list(address.sentinels),
        sentinel_kwargs={
            "socket_timeout": settings.redis_socket_timeout_s,
            "socket_connect_timeout": settings.redis_connect_timeout_s,
            "password": str(sentinel_password) if sentinel_password else None,
            "decode_responses": True,
            "retry": Retry(NoBackoff(), retries=0),
            **tls,
            **address.options,
        },
        **master_kwargs,
    )
    client = sentinel.master_for(
        address.service_name,
        redis_class=_SentinelMasterRedis,
        connection_pool_class=_BlockingSentinelPool,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_timeout_s,
    )
    assert isinstance(client, _SentinelMasterRedis)
    client.sentinel_manager = sentinel
    hosts = ",".join(f"{host}:{port}" for host, port in address.sentinels)
    logger.info("redis: master %r named by the Sentinels at %s", address.service_name, hosts)
    return client


def _where(url: str) -> str:
    """host:port of a URL, without credentials, for logs."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}"


EMBEDDED_STORE_MISSING = (
    "REDIS_URL is not set and the in-process store of `broker dev` is not installed: set "
    "REDIS_URL, or install the dev extra (pip install 'gladia-broker[dev]')"
)


def check_embedded_store(settings: Settings) -> None:
    """Without REDIS_URL the broker runs on fakeredis, which only the dev extra installs."""
    if settings.redis_url:
        return
    try:
        import fakeredis  # noqa: F401  # imported to learn whether it is installed
    except ImportError:
        raise SettingsError(EMBEDDED_STORE_MISSING) from None


def _embedded_redis() -> redis.Redis:
    try:
        import fakeredis
    except ImportError:
        raise SettingsError(EMBEDDED_STORE_MISSING) from None

    logger.warning(
        "REDIS_URL is not set: using an in-process store. It is single-process only: "
        "sessions are lost on restart and invisible to other instances."
    )
    client: redis.Redis = fakeredis.FakeAsyncRedis(decode_responses=True)
    return client
