"""The store's key layout, TTLs and listing, on fakeredis and on the real server."""

from collections.abc import AsyncIterator

import fakeredis
import pytest
import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster

from broker.settings import Settings
from broker.store.connection import open_redis
from broker.store.keys import session_record_key
from broker.store.records import SessionStore
from broker.store.session_record import SessionRecord
from tests.support.records import session_record

SETTINGS = Settings(sessions_index_max=5)


def record(session_id: str, owner: str = "owner-a", status: str = "created") -> SessionRecord:
    return session_record(session_id, owner, "r-" + session_id, status=status)


async def all_keys(client: redis.Redis, pattern: str) -> list[str]:
    """KEYS on every master: on a cluster, plain KEYS asks one node only."""
    if isinstance(client, RedisCluster):
        found = await client.keys(pattern, target_nodes=RedisCluster.PRIMARIES)
    else:
        found = await client.keys(pattern)
    return [str(key) for key in found]  # text already: the clients decode responses


@pytest.fixture(params=["fakeredis", "redis-server", "redis-cluster"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[redis.Redis]:
    connection: redis.Redis
    if request.param == "fakeredis":
        connection = fakeredis.FakeAsyncRedis(decode_responses=True)
    elif request.param == "redis-cluster":
        url = request.getfixturevalue("redis_cluster_url")
        connection = open_redis(Settings(redis_url=url, redis_cluster=True))
    else:
        url = request.getfixturevalue("redis_url")
        connection = redis.Redis.from_url(url, decode_responses=True)
    yield connection
    await connection.aclose()


async def test_a_saved_record_loads_back_for_its_owner_only(client: redis.Redis) -> None:
    store = SessionStore(client, SETTINGS)
    await store.save(record("s1"))
    assert await store.load("owner-a", "s1") == record("s1")
    assert await store.load("owner-b", "s1") is None


async def test_every_key_has_a_ttl(client: redis.Redis) -> None:
    store = SessionStore(client, SETTINGS)
    await store.save(record("s1"))
    await store.save_final_result(record("s1"), {"id": "s1", "status": "done"})
    keys = await all_keys(client, "*")
    assert keys
    for key in keys:
        assert await client.ttl(key) > 0, key


async def test_keys_of_one_owner_share_a_cluster_hash_tag(client: redis.Redis) -> None:
    store = SessionStore(client, SETTINGS)
    await store.save(record("s1"))
    await store.save_final_result(record("s1"), {"id": "s1", "status": "done"})
    tags = {key[key.index("{") : key.index("}") + 1] for key in await all_keys(client, "*")}
    assert tags == {"{owner-a}"}


async def test_a_final_result_keeps_the_record_as_long_as_itself(client: redis.Redis) -> None:
    store = SessionStore(client, SETTINGS)
    await store.save(record("s1"))
    await store.save_final_result(record("s1"), {"id": "s1", "status": "done"})
    loaded = await store.load("owner-a", "s1")
    assert loaded is not None and loaded.status == "done" and loaded.is_final
    assert await store.load_result(loaded) == {"id": "s1", "status": "done"}
    session_ttls = [await client.ttl(key) for key in await all_keys(client, "*session:s1")]
    assert session_ttls[0] > SETTINGS.session_ttl_s


async def test_a_status_change_never_revives_an_expired_record(client: redis.Redis) -> None:
    store = SessionStore(client, SETTINGS)
    await store.set_status(record("gone"), "ended")
    assert await all_keys(client, "*") == []


async def test_listing_is_newest_first_with_a_cursor(client: redis.Redis) -> None:
    store = SessionStore(client, Settings(sessions_index_max=100))
    for number in range(7):
        await store.save(record(f"s{number}"))
    seen, cursor = [], None
    while True:
        page = await store.list_page("owner-a", 3, cursor)
        seen += [item.id for item in page.records]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"s{number}" for number in reversed(range(7))]


async def test_the_index_is_capped_and_forgets_expired_records(client: redis.Redis) -> None:
    store = SessionStore(client, SETTINGS)
    for number in range(8):
        await store.save(record(f"s{number}"))
    await client.delete("broker:{owner-a}:session:s7")
    page = await store.list_page("owner-a", 10, None)
    assert [item.id for item in page.records] == ["s6", "s5", "s4", "s3"]
    assert await client.zcard("broker:{owner-a}:sessions") == 4


async def test_delete_removes_record_result_and_index_entry(client: redis.Redis) -> None:
    store = SessionStore(client, SETTINGS)
    await store.save(record("s1"))
    await store.save_final_result(record("s1"), {"status": "done"})
    await store.delete(record("s1"))
    assert await all_keys(client, "*") == []


async def test_a_status_change_keeps_the_rest_of_the_record_and_its_ttl(
    client: redis.Redis,
) -> None:
    store = SessionStore(client, SETTINGS)
    await store.save(record("s1"))
    await store.set_status(record("s1"), "live")
    assert await store.load("owner-a", "s1") == record("s1", status="live")
    [key] = await all_keys(client, "*session:s1")
    assert 0 < await client.ttl(key) <= SETTINGS.session_ttl_s
    await store.set_status(record("s1"), "done")
    assert await client.ttl(key) > SETTINGS.session_ttl_s


async def test_a_record_is_one_compact_string_without_its_key_repeated(
    client: redis.Redis,
) -> None:
    store = SessionStore(client, SETTINGS)
    await store.save(record("s1"))
    [key] = await all_keys(client, "*session:s1")
    stored = await client.get(key)
    assert isinstance(stored, str) and not stored.startswith("{")
    assert "owner-a" not in stored and "s1" not in stored.split("\n")
    assert SessionRecord.from_stored("owner-a", "s1", stored) == record("s1")


async def test_a_record_stored_as_json_before_is_read_and_moved_alike(
    client: redis.Redis,
) -> None:
    store = SessionStore(client, SETTINGS)
    [key] = [session_record_key("owner-a", "s1")]
    await client.set(key, record("s1").to_json(), ex=60)
    assert await store.load("owner-a", "s1") == record("s1")
    await store.set_status(record("s1"), "done")
    assert await store.load("owner-a", "s1") == record("s1", status="done")
    assert str(await client.get(key)).startswith("{")
