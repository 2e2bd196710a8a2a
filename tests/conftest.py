"""Shared fixtures: a real Redis (a dedicated database index, flushed around each test) or the
3-node cluster from tests/support, and a queue of the test's own."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest

import tests.support.jobs  # noqa: F401  (registers the test job types)
from explorer_jobs.queue import Queue
from explorer_jobs.redis_client import RedisClient, create_redis
from explorer_jobs.settings import Settings
from tests.support.redis_urls import redis_test_url

pytest_plugins = ["tests.support.fixtures"]

# A database index of its own: tests flush it, so it must never be one an application uses.
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", redis_test_url(15))


def queue_settings(url: str, cluster: bool = False, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "REDIS_URL": url,
        "REDIS_CLUSTER": cluster,
        "QUEUE_NAME": f"t{uuid.uuid4().hex[:10]}",
        "LEASE_SECONDS": 5.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
async def redis() -> AsyncIterator[RedisClient]:
    client = create_redis(TEST_REDIS_URL, cluster=False)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture(params=["single", pytest.param("cluster", marks=pytest.mark.cluster)])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[tuple[RedisClient, Settings]]:
    """A Redis client and settings with a fresh queue name, on one server or on the cluster."""
    if request.param == "single":
        client = create_redis(TEST_REDIS_URL, cluster=False)
        await client.flushdb()
        settings = queue_settings(TEST_REDIS_URL)
    else:
        url = request.getfixturevalue("redis_cluster_url")
        client = create_redis(url, cluster=True)
        settings = queue_settings(url, cluster=True)
    yield client, settings
    if request.param == "single":
        await client.flushdb()
    await client.aclose()


@pytest.fixture
def queue(backend: tuple[RedisClient, Settings]) -> Queue:
    client, settings = backend
    return Queue(client, settings)
