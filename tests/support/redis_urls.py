"""Where the tests' shared Redis is, and which database index each suite owns.

Suites flush their own index around each test, so two runs against the same server would flush
each other's data. `TEST_REDIS_SERVER` (default the machine's 127.0.0.1:6379) moves every suite
to another server at once, so parallel runs can each start a redis-server of their own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import redis

TEST_REDIS_SERVER = os.environ.get("TEST_REDIS_SERVER", "redis://127.0.0.1:6379").rstrip("/")


def redis_test_url(index: int) -> str:
    """The URL of database `index` on the tests' Redis server."""
    return f"{TEST_REDIS_SERVER}/{index}"


@contextmanager
def flushed_db(url: str) -> Iterator[redis.Redis]:
    """A client (decoded responses) of the database at `url`, flushed before and after the block."""
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()
