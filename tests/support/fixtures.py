"""Pytest fixtures for throwaway Redis servers; a plugin module, registered by the root conftest:

    pytest_plugins = ["tests.support.fixtures"]

- `redis_cluster` (session): a started 3-master `RedisClusterNodes`.
- `redis_cluster_url` (session): "redis://127.0.0.1:<port>/0" of one of its nodes. The cluster is
  shared by the whole run and never flushed: use a hash tag (queue name) of the test's own.
- `throwaway_redis` (function): a factory, `throwaway_redis(appendonly=True, appendfsync="always")`,
  returning a started `RedisServer`; every server it made is killed after the test.
- `black_hole` (function): a loopback port that accepts TCP connections and never answers.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Protocol

import pytest

from .redis_servers import AppendFsync, RedisClusterNodes, RedisServer


class ThrowawayRedisFactory(Protocol):
    def __call__(
        self,
        *,
        appendonly: bool = False,
        appendfsync: AppendFsync = "everysec",
        extra_config: dict[str, str] | None = None,
    ) -> RedisServer: ...


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    # Under pytest's temp root (kept for the last few runs) so a failed run's node logs can be read.
    cluster = RedisClusterNodes(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster.start()
    finally:
        cluster.cleanup()


@pytest.fixture(scope="session")
def redis_cluster_url(redis_cluster: RedisClusterNodes) -> str:
    return redis_cluster.url


@pytest.fixture
def throwaway_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayRedisFactory]:
    servers: list[RedisServer] = []

    def make(
        *,
        appendonly: bool = False,
        appendfsync: AppendFsync = "everysec",
        extra_config: dict[str, str] | None = None,
    ) -> RedisServer:
        server = RedisServer(
            tmp_path_factory.mktemp("redis"),
            appendonly=appendonly,
            appendfsync=appendfsync,
            extra_config=extra_config,
        )
        servers.append(server)  # before start(): a server that fails to answer is still killed
        return server.start()

    try:
        yield make
    finally:
        for server in servers:
            server.cleanup()


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel's backlog) and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])
