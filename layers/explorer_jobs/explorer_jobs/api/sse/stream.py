"""The streaming response: replay, then live events, heartbeats, a capped lifetime, and a clean end
on disconnect, overflow or shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from redis.exceptions import RedisError
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from explorer_jobs.api.sse.hub import EventHub, Subscriber
from explorer_jobs.api.sse.wire import COMMENT, Frame, StreamId, opening_frame

log = logging.getLogger("explorer_jobs.api.sse")

# Headers that keep proxies (nginx, CDNs) from buffering or caching the stream.
STREAM_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
    "Connection": "keep-alive",
}
# After the hub closes a stream, how long its writer may take to flush before it is cut.
CLOSE_GRACE = 1.0


class EventStreamResponse(Response):
    """`text/event-stream` of one subscriber. Starts after `last_id`: the client's Last-Event-ID
    (replayed from Redis first) or, without one, where the subscriber joined."""

    media_type = "text/event-stream"

    def __init__(self, hub: EventHub, sub: Subscriber, last_id: StreamId | None) -> None:
        super().__init__(headers=STREAM_HEADERS, media_type=self.media_type)
        # Response() declares the empty body's length (0); a stream has none.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.hub = hub
        self.sub = sub
        self.replay_after = last_id
        self.last_id = sub.start if last_id is None else last_id
        settings = hub.settings
        self.heartbeat = settings.SSE_HEARTBEAT_SECONDS
        self.lifetime = settings.SSE_STREAM_MAX_MINUTES * 60
        self.retry_ms = settings.SSE_RETRY_MS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tasks: set[asyncio.Task[None]] = set()
        try:
            start = {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            await send(start)
            pump = asyncio.create_task(self._pump(send))
            tasks = {
                pump,
                asyncio.create_task(self._disconnected(receive)),
                asyncio.create_task(self._closed_for_good()),
            }
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if pump.done():
                pump.result()  # a write error surfaces (logged by the server) instead of vanishing
        finally:
            self.hub.unsubscribe(self.sub)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await task

    async def _disconnected(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    async def _closed_for_good(self) -> None:
        # A stream the hub closed normally ends in the pump; this cuts a writer stuck on a client
        # that stopped reading (its send() waits on the socket for as long as the client likes).
        await self.sub.closed.wait()
        await asyncio.sleep(CLOSE_GRACE)

    def _fresh(self, frames: list[Frame]) -> bytes:
        # Replay and live delivery overlap around the moment of subscribing: drop what was sent.
        out = []
        for frame in frames:
            if frame.id > self.last_id:
                out.append(frame.data)
                self.last_id = frame.id
        return b"".join(out)

    async def _pump(self, send: Send) -> None:
        async def write(body: bytes) -> None:
            await send({"type": "http.response.body", "body": body, "more_body": True})

        await write(opening_frame(self.retry_ms, self.last_id))
        if self.replay_after is not None:
            try:
                async for page in self.hub.replay(self.sub.user_id, self.replay_after):
                    if chunk := self._fresh(page):
                        await write(chunk)
            except RedisError as exc:
                # The status is sent already: no 503 now. The stream ends, and the client comes
                # back after `retry:` with the Last-Event-ID of what it got; the replay resumes there.
                log.warning("event replay failed (%s: %s); ending the stream", type(exc).__name__, exc)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
        now = time.monotonic()
        deadline, next_beat = now + self.lifetime, now + self.heartbeat
        while (now := time.monotonic()) < deadline:
            if now >= next_beat:
                await write(COMMENT)
                next_beat = now + self.heartbeat
                continue
            try:
                # asyncio.timeout, not wait_for: no task per wait, which counts with 1,000 clients.
                async with asyncio.timeout(min(next_beat, deadline) - now):
                    first = await self.sub.queue.get()
            except TimeoutError:
                continue
            frames, ended = drain(self.sub, first)
            if chunk := self._fresh(frames):
                await write(chunk)
            if ended:
                break
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def drain(sub: Subscriber, first: Frame | None) -> tuple[list[Frame], bool]:
    """`first` and whatever else is queued already; True when the stream's end was among them."""
    if first is None:
        return [], True
    frames = [first]
    while not sub.queue.empty():
        frame = sub.queue.get_nowait()
        if frame is None:
            return frames, True
        frames.append(frame)
    return frames, False
