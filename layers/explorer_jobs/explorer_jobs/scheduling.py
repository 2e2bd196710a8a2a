"""Scheduled re-training: the weekly cron of old, as invocations.

Each tick (an EventBridge schedule on AWS, a loop under `explorer-jobs scheduler` or `dev`) looks
at every connection that has a training schedule and queues a training for each whose cron fired
since the previous tick. The idempotency key names the connection and the fire time, so a tick
delivered twice, overlapping windows, or two schedulers never queue the same training twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import croniter

from explorer_jobs.enqueueing import EnqueueRequest, EnqueueResult
from explorer_jobs.queue import Queue

log = logging.getLogger("explorer_jobs.scheduler")


@dataclass(frozen=True, slots=True)
class Scheduled:
    connection_id: str
    user_id: str
    cron: str


def last_fire_time(cron: str, now: datetime) -> datetime:
    """The latest time at or before `now` at which `cron` fires (UTC)."""
    # croniter's get_prev is strictly before its start: start a second later to include `now`.
    start = now.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
    fired: datetime = croniter(cron, start).get_prev(datetime)
    return fired.astimezone(UTC)


def due(schedules: Iterable[Scheduled], now: datetime, window: timedelta) -> list[tuple[Scheduled, datetime]]:
    """The schedules whose cron fired in (now - window, now], with that fire time."""
    out = []
    for s in schedules:
        fired = last_fire_time(s.cron, now)
        if now - window < fired <= now:
            out.append((s, fired))
    return out


def scheduled_connections() -> list[Scheduled]:
    from explorer_jobs.store.connections import select_scheduled_connections

    return [
        Scheduled(c.id, c.user_id, c.training_schedule)
        for c in select_scheduled_connections()
        if c.training_schedule
    ]


async def fire(
    queue: Queue,
    now: datetime | None = None,
    window: timedelta | None = None,
    schedules: Callable[[], list[Scheduled]] = scheduled_connections,
) -> list[EnqueueResult]:
    """Queue the trainings due at `now`; returns what was enqueued (or found already queued).

    The window is two tick periods: a late or lost tick is covered by the next one, and the
    idempotency key keeps the overlap from queueing anything twice."""
    now = now or datetime.now(UTC)
    window = window or timedelta(seconds=2 * queue.settings.SCHEDULER_TICK_SECONDS)
    found = await asyncio.to_thread(schedules)
    requests = [
        EnqueueRequest(
            "schema_training",
            {"connectionId": s.connection_id},
            s.user_id,
            idempotency_key=f"schedule:{s.connection_id}:{fired.strftime('%Y%m%dT%H%M')}",
        )
        for s, fired in due(found, now, window)
    ]
    results = await queue.enqueue_many(requests) if requests else []
    created = sum(r.created for r in results)
    if results:
        log.info("scheduled trainings: %d queued, %d already queued", created, len(results) - created)
    return results


async def run_scheduler(queue: Queue, stop: asyncio.Event, tick: float | None = None) -> None:
    """Fire on every tick until `stop` is set (the local stand-in for EventBridge)."""
    tick = tick or queue.settings.SCHEDULER_TICK_SECONDS
    log.info("scheduler started: a tick every %.0f s", tick)
    while not stop.is_set():
        try:
            await fire(queue)
        except Exception:  # one bad tick must not end the loop; the next one retries
            log.exception("scheduler tick failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), tick)
