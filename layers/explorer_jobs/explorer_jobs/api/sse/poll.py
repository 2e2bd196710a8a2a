"""Long-poll: the same events for adapters that buffer a response (Mangum, Lambda without streaming).

One request answers as soon as there are events after the client's Last-Event-ID, or after a
bounded wait with none; the answer is a complete `text/event-stream` body, so EventSource reads it
and reconnects (after a short `retry:`) with the last id it saw.
"""

from __future__ import annotations

import asyncio
import time

from starlette.responses import Response

from explorer_jobs.api.sse.hub import EventHub, Subscriber
from explorer_jobs.api.sse.stream import drain
from explorer_jobs.api.sse.wire import Frame, StreamId, opening_frame

# EventSource waits `retry` ms before it polls again: short, the wait is the server's.
POLL_RETRY_MS = 250


async def poll_events(hub: EventHub, sub: Subscriber, last_id: StreamId | None) -> Response:
    """Events after `last_id` (replayed, else the next live ones) within `SSE_POLL_WAIT_SECONDS`."""
    start = sub.start if last_id is None else last_id
    frames: list[Frame] = []
    try:
        if last_id is not None:
            async for page in hub.replay(sub.user_id, last_id):
                frames.extend(page)
        deadline = time.monotonic() + hub.settings.SSE_POLL_WAIT_SECONDS
        while not frames and (left := deadline - time.monotonic()) > 0:
            try:
                first = await asyncio.wait_for(sub.queue.get(), left)
            except TimeoutError:
                break
            live, ended = drain(sub, first)
            frames = [f for f in live if f.id > start]
            if ended:
                break
    finally:
        hub.unsubscribe(sub)
    body = [opening_frame(min(POLL_RETRY_MS, hub.settings.SSE_RETRY_MS), start)]
    body.extend(f.data for f in frames)
    return Response(b"".join(body), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
