"""Awaiting a user's job events (the Redis stream the SSE gateway serves) instead of sleeping."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from explorer_jobs.queue import Queue


async def read_events(queue: Queue, user_id: str) -> list[dict[str, Any]]:
    entries = await queue.redis.xrange(queue.keys.events(user_id))
    return [json.loads(fields["d"]) | {"_id": entry_id} for entry_id, fields in entries]


async def wait_for_events(
    queue: Queue,
    user_id: str,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 15.0,
) -> list[dict[str, Any]]:
    """Block on the user's stream (XREAD BLOCK) until `done(all events so far)` holds."""
    events = await read_events(queue, user_id)
    last = events[-1]["_id"] if events else "0-0"
    deadline = time.monotonic() + timeout
    key = queue.keys.events(user_id)
    while not done(events):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for events; got {[e['type'] for e in events]}")
        reply = await queue.redis.xread({key: last}, block=max(1, int(min(left, 1.0) * 1000)))
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                events.append(json.loads(fields["d"]) | {"_id": entry_id})
                last = entry_id
    return events


def types_of(events: list[dict[str, Any]], job_id: str) -> list[str]:
    return [e["type"] for e in events if e["jobId"] == job_id]


def has_event(job_id: str, event_type: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda events: any(e["jobId"] == job_id and e["type"] == event_type for e in events)
