"""The throwaway servers are what the queue's cluster and crash tests assume they are."""

from __future__ import annotations

import pytest
import redis
from redis.asyncio import RedisCluster

from .fixtures import ThrowawayRedisFactory
from .redis_servers import SHARED_REDIS_PORT, RedisClusterNodes


@pytest.mark.cluster
def test_cluster_state_ok_on_every_node(redis_cluster: RedisClusterNodes) -> None:
    assert len({node.port for node in redis_cluster.nodes}) == 3
    assert SHARED_REDIS_PORT not in {node.port for node in redis_cluster.nodes}
    for node in redis_cluster.nodes:
        info = redis_cluster.cluster_info(node)
        assert info["cluster_state"] == "ok"
        assert info["cluster_slots_ok"] == "16384"
        assert info["cluster_size"] == "3"


@pytest.mark.cluster
async def test_hash_tagged_keys_share_a_slot_through_the_cluster_client(redis_cluster_url: str) -> None:
    client = RedisCluster.from_url(redis_cluster_url, decode_responses=True)
    try:
        await client.set("ej:{t-support}:job:1", "queued")
        assert await client.get("ej:{t-support}:job:1") == "queued"
        # Two keys of one tag in one script: what every queue transition does. Without the shared tag
        # the cluster would answer CROSSSLOT.
        moved = await client.eval(
            "redis.call('SET', KEYS[2], redis.call('GET', KEYS[1])); return redis.call('GET', KEYS[2])",
            2,
            "ej:{t-support}:job:1",
            "ej:{t-support}:copy",
        )
        assert moved == "queued"
        # The cluster is real: the slots of different tags are served by different nodes.
        owners = {client.get_node_from_key(f"{{t-support-{i}}}:job").port for i in range(30)}
        assert len(owners) == 3
        await client.delete("ej:{t-support}:job:1", "ej:{t-support}:copy")
    finally:
        await client.aclose()


def _run_id(client: redis.Redis) -> str:
    return str(client.info("server")["run_id"])


def test_aof_always_keeps_a_write_across_kill_9(throwaway_redis: ThrowawayRedisFactory) -> None:
    server = throwaway_redis(appendonly=True, appendfsync="always")
    assert server.port != SHARED_REDIS_PORT
    with server.client() as client:
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        client.set("survivor", "yes")
        before = _run_id(client)
    server.restart(crash=True)
    with server.client() as client:
        assert _run_id(client) != before  # a new process, replayed from the AOF
        assert client.get("survivor") == b"yes"


def test_without_aof_a_kill_9_loses_the_write(throwaway_redis: ThrowawayRedisFactory) -> None:
    # The control for the test above: the restart really starts from disk, not from memory.
    server = throwaway_redis()
    with server.client() as client:
        client.set("survivor", "yes")
    server.restart(crash=True)
    with server.client() as client:
        assert client.get("survivor") is None


def test_factory_servers_are_independent_and_stopped(throwaway_redis: ThrowawayRedisFactory) -> None:
    first, second = throwaway_redis(), throwaway_redis()
    assert first.port != second.port
    first.stop()
    assert not first.is_running()
    assert second.is_running()
