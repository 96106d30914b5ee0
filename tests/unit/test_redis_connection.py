"""REDIS_URL names the topology: one server, TLS, Sentinel or Cluster, each with set behaviour."""

import pytest
import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool

from broker.errors import RedisUrlError, SettingsError
from broker.settings import Settings, check_for_production, load_settings
from broker.store.connection import SentinelUrl, open_redis, parse_sentinel_url


def test_a_sentinel_url_names_every_sentinel_the_master_and_the_database() -> None:
    parsed = parse_sentinel_url(
        "redis+sentinel://app:p%40ss@10.0.0.1:26379,10.0.0.2:26380,sentinel-3/broker-master/2"
    )
    assert parsed == SentinelUrl(
        sentinels=(("10.0.0.1", 26379), ("10.0.0.2", 26380), ("sentinel-3", 26379)),
        service_name="broker-master",
        db=2,
        username="app",
        password="p@ss",
    )


def test_a_tls_sentinel_url_keeps_its_query_options() -> None:
    parsed = parse_sentinel_url(
        "rediss+sentinel://[::1]:26379/mymaster?ssl_ca_certs=/etc/ssl/redis-ca.pem"
    )
    assert parsed.sentinels == (("::1", 26379),)
    assert parsed.tls is True
    assert parsed.db == 0
    assert parsed.options == {"ssl_ca_certs": "/etc/ssl/redis-ca.pem"}


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://10.0.0.1:26379",
        "redis+sentinel:///mymaster",
        "redis+sentinel://10.0.0.1:port/mymaster",
        "redis+sentinel://10.0.0.1/mymaster/zero",
        "redis+sentinel://10.0.0.1/a/0/extra",
        "redis://10.0.0.1/mymaster",
    ],
)
def test_a_sentinel_url_without_a_usable_sentinel_or_master_is_refused(url: str) -> None:
    with pytest.raises(RedisUrlError):
        parse_sentinel_url(url)


@pytest.mark.parametrize(
    ("environ", "wrong"),
    [
        ({"REDIS_URL": "http://127.0.0.1:6379"}, "REDIS_URL must start with one of"),
        (
            {"REDIS_URL": "redis+sentinel://127.0.0.1/m", "REDIS_CLUSTER": "true"},
            "REDIS_CLUSTER needs a redis://",
        ),
        ({"REDIS_HEALTH_CHECK_INTERVAL_S": "-1"}, "REDIS_HEALTH_CHECK_INTERVAL_S"),
        ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL must be one of"),
        ({"BROKER_METRICS_PORT": "70000"}, "BROKER_METRICS_PORT must be a TCP port"),
        ({"BROKER_SHUTDOWN_TIMEOUT_S": "-5"}, "BROKER_SHUTDOWN_TIMEOUT_S"),
    ],
)
def test_an_unusable_operations_setting_is_refused_by_name(
    environ: dict[str, str], wrong: str
) -> None:
    with pytest.raises(SettingsError, match=wrong):
        load_settings(environ=environ, env_file=None)


def test_operations_settings_are_read_from_the_environment() -> None:
    settings = load_settings(
        environ={
            "REDIS_URL": "redis://10.0.0.1:6379/0",
            "REDIS_CLUSTER": "true",
            "REDIS_HEALTH_CHECK_INTERVAL_S": "5",
            "REDIS_SENTINEL_PASSWORD": "sentinel-password-1",
            "LOG_LEVEL": "warning",
            "BROKER_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1",
            "BROKER_METRICS_PORT": "9100",
            "BROKER_SHUTDOWN_TIMEOUT_S": "25",
        },
        env_file=None,
    )
    assert settings.redis_cluster is True
    assert settings.redis_health_check_interval_s == 5
    assert str(settings.redis_sentinel_password) == "sentinel-password-1"
    assert settings.log_level == "WARNING"
    assert settings.trusted_proxies == ("10.0.0.0/8", "192.168.1.1")
    assert settings.metrics_port == 9100
    assert settings.shutdown_timeout_s == 25


def test_an_empty_metrics_port_means_metrics_on_the_main_port() -> None:
    settings = load_settings(environ={"BROKER_METRICS_PORT": ""}, env_file=None)
    assert settings.metrics_port is None


def test_redis_passwords_are_secrets_the_log_redaction_knows() -> None:
    settings = Settings(
        redis_url="rediss://app:redis%2Fpassword-1@10.0.0.1:6380/0",
        redis_sentinel_password=None,
    )
    assert "redis/password-1" in settings.all_secrets()


async def test_a_redis_url_opens_a_client_with_a_bounded_blocking_pool_and_no_retries() -> None:
    client = open_redis(
        Settings(
            redis_url="redis://127.0.0.1:1/0",
            redis_max_connections=7,
            redis_pool_timeout_s=0.25,
            redis_socket_timeout_s=0.5,
            redis_health_check_interval_s=9,
        )
    )
    pool = client.connection_pool
    assert isinstance(pool, redis.BlockingConnectionPool)
    assert (pool.max_connections, pool.timeout) == (7, 0.25)
    options = pool.connection_kwargs
    assert options["socket_timeout"] == 0.5
    assert options["health_check_interval"] == 9
    assert options["retry"].get_retries() == 0
    assert options["client_name"] == "gladia-broker"
    await client.aclose()


async def test_the_cluster_setting_opens_a_cluster_client_without_retries() -> None:
    client = open_redis(Settings(redis_url="redis://127.0.0.1:1/0", redis_cluster=True))
    assert isinstance(client, RedisCluster)
    assert client.retry.get_retries() == 0
    await client.aclose()


async def test_a_sentinel_url_opens_a_client_that_asks_the_sentinels_for_the_master() -> None:
    client = open_redis(Settings(redis_url="redis+sentinel://127.0.0.1:1,127.0.0.1:2/m"))
    pool = client.connection_pool
    assert isinstance(pool, redis.BlockingConnectionPool)
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "m"
    assert len(pool.sentinel_manager.sentinels) == 2
    await client.aclose()


def test_serve_refuses_to_trust_forwarded_headers_from_anyone() -> None:
    settings = load_settings(environ={"BROKER_TRUSTED_PROXIES": "10.0.0.1,*"}, env_file=None)
    assert "BROKER_TRUSTED_PROXIES must list the gateway's addresses, not '*'" in (
        check_for_production(settings)
    )
