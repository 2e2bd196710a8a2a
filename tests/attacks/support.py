"""Helpers of the attack suite: its Redis index, the real app (real store, real connection lookup),
a worker run to an awaited event, and a reader of every value Redis holds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import redis
from fastapi import FastAPI

from explorer_jobs.api.combined import create_combined_app
from explorer_jobs.processors import PROCESSORS, load_builtin_processors
from explorer_jobs.queue import Queue
from explorer_jobs.redis_client import create_redis
from explorer_jobs.settings import Settings, get_settings
from explorer_jobs.worker import Worker
from tests.api.conftest import api_settings
from tests.support.events import wait_for_events
from tests.support.redis_urls import redis_test_url

# This suite's own database index, flushed around each test that uses it.
ATTACK_REDIS_URL = redis_test_url(14)
WORKER_STOP_SECONDS = 30.0


def attack_settings(**overrides: object) -> Settings:
    """The HTTP suite's settings (its JWT secret, no rate limit to speak of) on this suite's Redis."""
    return api_settings(**{"REDIS_URL": ATTACK_REDIS_URL, "SSE_POLL_WAIT_SECONDS": 0.2, **overrides})


def real_app(settings: Settings) -> FastAPI:
    """Every HTTP function in one app, with the real store behind the connection routes and lookup."""
    app = create_combined_app()
    app.dependency_overrides[get_settings] = lambda: settings
    return app


async def run_job(settings: Settings, user_id: str, job_id: str, timeout: float = 30.0) -> str:
    """Run a real worker (built-in processors) until the job completes or fails; which of the two."""
    load_builtin_processors()
    client = create_redis(settings.redis_url())
    queue = Queue(client, settings)
    worker = Worker(queue, processors=PROCESSORS)
    task = asyncio.create_task(worker.run())
    try:
        events = await wait_for_events(queue, user_id, _finished(job_id), timeout=timeout)
        return next(e["type"] for e in events if _finished(job_id)([e]))
    finally:
        worker.stop()
        await asyncio.wait_for(task, WORKER_STOP_SECONDS)
        await client.aclose()


def _finished(job_id: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda events: any(
        e["jobId"] == job_id and e["type"] in ("job_completed", "job_failed") for e in events
    )


def every_value(client: redis.Redis) -> Iterator[tuple[str, str, str]]:
    """(key, type, everything the key holds as text) for every key, whatever its type."""
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        value: Any
        if kind == "string":
            value = client.get(key)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "set":
            value = client.smembers(key)
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            value = client.xrange(key)
        elif kind == "none":  # expired between SCAN and TYPE
            continue
        else:
            raise AssertionError(f"{key!r} has a type this reader does not know: {kind}")
        yield key, kind, repr(value)
