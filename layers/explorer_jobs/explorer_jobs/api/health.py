"""`/healthz` checks: Redis and the store, each bounded so a dead dependency answers 503 fast."""

from __future__ import annotations

import asyncio
import logging
from importlib import import_module
from typing import Any

from starlette.concurrency import run_in_threadpool

from explorer_jobs.queue import Queue
from explorer_jobs.settings import Settings

log = logging.getLogger("explorer_jobs.api.health")

STORE_ENGINE_MODULE = "explorer_jobs.store.engine"


def _select_one() -> None:
    # Imported here: SQLAlchemy stays out of a cold start that never asks for /healthz.
    from sqlalchemy import text

    engine = import_module(STORE_ENGINE_MODULE).get_engine()
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


async def _probe_store() -> str:
    try:
        import_module(STORE_ENGINE_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name not in (STORE_ENGINE_MODULE, "explorer_jobs.store"):
            raise
        return "absent"
    # A thread cannot be cancelled: the answer is bounded by `_bounded`, the thread by the driver's
    # own connect timeout.
    await run_in_threadpool(_select_one)
    return "ok"


async def _bounded(name: str, check: Any, seconds: float) -> str:
    try:
        result: str = await asyncio.wait_for(check, seconds)
        return result
    except Exception as exc:  # any failure, a timeout included, is "down": the answer is 503, not 500
        log.warning("health check %s failed: %s: %s", name, type(exc).__name__, exc)
        return "down"


async def _ping_redis(queue: Queue) -> str:
    return "ok" if await queue.ping() else "down"


async def check_health(queue: Queue, settings: Settings) -> dict[str, str]:
    """Each dependency's state ("ok", "down", or why it was not checked), checked concurrently."""
    timeout = settings.HEALTH_TIMEOUT_SECONDS
    redis, store = await asyncio.gather(
        _bounded("redis", _ping_redis(queue), timeout),
        _bounded("store", _probe_store(), timeout),
    )
    return {"redis": redis, "store": store}
