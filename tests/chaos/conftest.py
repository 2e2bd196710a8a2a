"""Chaos fixtures: a throwaway Redis server of the test's own (never the shared 6379, which the
test may flush or kill) and a queue on it; worker processes stopped after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from explorer_jobs.queue import Queue
from explorer_jobs.redis_client import create_redis
from tests.conftest import queue_settings
from tests.support.fixtures import ThrowawayRedisFactory
from tests.support.redis_servers import RedisServer

from .support import EVENTS_MAXLEN, Workers


@pytest.fixture
def chaos_redis(throwaway_redis: ThrowawayRedisFactory) -> RedisServer:
    return throwaway_redis()


@pytest.fixture
async def chaos_queue(chaos_redis: RedisServer) -> AsyncIterator[Queue]:
    client = create_redis(chaos_redis.url, cluster=False)
    settings = queue_settings(chaos_redis.url, EVENTS_MAXLEN=EVENTS_MAXLEN)
    yield Queue(client, settings)
    await client.aclose()


@pytest.fixture
def workers(chaos_redis: RedisServer, chaos_queue: Queue, tmp_path: Path) -> Iterator[Workers]:
    procs = Workers(chaos_redis.url, chaos_queue.name, tmp_path)
    yield procs
    procs.stop_all()
