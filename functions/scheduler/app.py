"""The scheduler function: an EventBridge Scheduler tick queues the trainings that are due.

Each connection carries its own cron (default `SCHEMA_TRAINING_CRON`); the idempotency key names
the connection and the fire time, so a tick delivered twice queues nothing twice.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from explorer_jobs.observability import configure_lambda_logging, count_enqueued
from explorer_jobs.queue import Queue
from explorer_jobs.redis_client import create_redis
from explorer_jobs.scheduling import fire
from explorer_jobs.settings import get_settings

configure_lambda_logging()

logger = Logger(service="explorer-jobs-scheduler")


def _tick_time(event: dict[str, Any]) -> datetime:
    # EventBridge puts the scheduled time in `time`; a manual invocation may not.
    raw = event.get("time") if isinstance(event, dict) else None
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            pass
    return datetime.now(UTC)


async def _run(now: datetime) -> dict[str, int]:
    # A client per invocation: an asyncio client belongs to the loop that created it. Its calls
    # are bounded like the HTTP functions': a paused Redis fails this tick in seconds, not at the
    # Lambda timeout, and the next tick's window still covers what this one missed.
    settings = get_settings()
    redis = create_redis(settings=settings, timeout=settings.API_REDIS_TIMEOUT_SECONDS)
    try:
        results = await fire(Queue(redis), now)
    finally:
        await redis.aclose()
    queued = sum(r.created for r in results)
    count_enqueued("schema_training", queued)
    return {"queued": queued, "alreadyQueued": len(results) - queued}


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    outcome = asyncio.run(_run(_tick_time(event)))
    logger.info("scheduler tick", extra=outcome)
    return outcome
