"""Redis clients and queues for the HTTP functions, created lazily and reused.

No ASGI lifespan: Mangum runs with `lifespan="off"`, so a client is made on first use and kept for
the warm invocations that follow. A client is bound to the event loop it was made on (Mangum keeps
one loop per process; tests and the combined app may run several), hence the per-loop cache.
"""

from __future__ import annotations

import asyncio

from explorer_jobs.queue import Queue
from explorer_jobs.redis_client import RedisClient, create_redis
from explorer_jobs.settings import Settings

# (loop, settings) -> the queue over its client. The values keep both alive, so the ids in the key
# cannot be reused by other objects while the entry exists.
_queues: dict[tuple[int, int], tuple[asyncio.AbstractEventLoop, Settings, Queue]] = {}


def _forget_closed_loops() -> None:
    for key, (loop, _, _) in list(_queues.items()):
        if loop.is_closed():
            del _queues[key]


def get_queue(settings: Settings) -> Queue:
    """The queue (and its Redis client) for these settings on the running loop."""
    loop = asyncio.get_running_loop()
    key = (id(loop), id(settings))
    entry = _queues.get(key)
    if entry is None:
        _forget_closed_loops()
        redis = create_redis(settings=settings, timeout=settings.API_REDIS_TIMEOUT_SECONDS)
        entry = (loop, settings, Queue(redis, settings))
        _queues[key] = entry
    return entry[2]


def get_redis(settings: Settings) -> RedisClient:
    """The Redis client behind `get_queue(settings)`."""
    return get_queue(settings).redis


async def close_clients() -> None:
    """Close the clients made on the running loop (tests, and a server's shutdown)."""
    loop = asyncio.get_running_loop()
    for key, (owner, _, queue) in list(_queues.items()):
        if owner is loop:
            del _queues[key]
            await queue.redis.aclose()
