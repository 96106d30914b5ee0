from tests.support.servers import RedisServer


def test_the_suite_runs_on_a_real_redis_server(redis_server: RedisServer) -> None:
    info = redis_server.client().info("server")
    assert info["tcp_port"] == redis_server.port
    assert "redis_version" in info
