"""One reader per gateway process: a single XREAD BLOCK over the streams of the connected users,
fanned out in memory to each client's queue.

Redis connections are bounded whatever the number of clients: one for the blocking reader and a
small blocking pool (`POOL_CONNECTIONS`) for the rest (stream tails, replays, tickets, and the
CLIENT UNBLOCK that makes the reader pick up a newly connected user at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from explorer_jobs.api.sse.wire import ZERO_ID, Frame, StreamId, entry_id, event_frame
from explorer_jobs.errors import Unavailable
from explorer_jobs.keys import QueueKeys
from explorer_jobs.redis_client import RedisClient, create_redis
from explorer_jobs.settings import Settings

log = logging.getLogger("explorer_jobs.api.sse")

POOL_CONNECTIONS = 2  # + the reader's own: 3 per gateway process
# CLIENT LIST shows these names, so an operator (and the bench) can count the gateway's connections.
READER_NAME, POOL_NAME = "ej-sse-reader", "ej-sse"
READ_COUNT = 1000  # entries per stream per XREAD
REPLAY_PAGE = 500
RECONNECT_PAUSE = (0.05, 2.0)  # the reader's backoff after a Redis error: first, cap
UNBLOCK_ATTEMPTS = 200
CLOSE_WAIT = 0.5


class Subscriber:
    """One connected client: its user, where its live events start, and its queue of frames.

    The queue is bounded by `limit`: a client that falls that far behind is closed ("overflow")
    and reconnects with Last-Event-ID, rather than growing the gateway's memory without end.
    `None` in the queue means the stream is over; `close_reason` says why.
    """

    __slots__ = ("close_reason", "closed", "limit", "queue", "start", "user_id")

    def __init__(self, user_id: str, start: StreamId, limit: int) -> None:
        self.user_id = user_id
        self.start = start
        self.limit = limit
        self.queue: asyncio.Queue[Frame | None] = asyncio.Queue()
        self.closed = asyncio.Event()
        self.close_reason: str | None = None

    def offer(self, frame: Frame) -> None:
        if self.close_reason is not None:
            return
        if self.queue.qsize() >= self.limit:
            self.close("overflow")
            return
        self.queue.put_nowait(frame)

    def close(self, reason: str) -> None:
        if self.close_reason is None:
            self.close_reason = reason
            self.queue.put_nowait(None)
            self.closed.set()


@dataclass(slots=True)
class _UserStream:
    cursor: StreamId  # the last id fanned out (or the tail when the first client came)
    subscribers: set[Subscriber] = field(default_factory=set)


class EventHub:
    """The fan-out of one process on one event loop. Use `subscribe`/`unsubscribe` per client."""

    def __init__(self, settings: Settings, *, reader: RedisClient, redis: RedisClient, unblock: bool) -> None:
        self.settings = settings
        self.keys = QueueKeys.for_queue(settings.KEY_PREFIX, settings.QUEUE_NAME)
        self.redis = redis  # the bounded pool: tails, replays, tickets
        self.loop = asyncio.get_running_loop()
        self._reader = reader
        self._unblock_enabled = unblock
        self._streams: dict[str, _UserStream] = {}
        self._opening: dict[str, asyncio.Future[StreamId]] = {}
        self._changed = asyncio.Event()
        self._reading = False
        self._generation = 0
        self._reader_id: int | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._kick_task: asyncio.Task[None] | None = None
        self.closing = False

    @classmethod
    def create(cls, settings: Settings) -> EventHub:
        """A hub with its own bounded Redis clients (made now, connected on first use)."""
        block_s = settings.SSE_READER_BLOCK_MS / 1000
        if settings.REDIS_CLUSTER:
            # No CLIENT UNBLOCK across a cluster client's nodes: the reader's BLOCK stays short instead.
            reader = create_redis(settings=settings, socket_timeout=block_s + 5)
            return cls(settings, reader=reader, redis=create_redis(settings=settings), unblock=False)
        url = settings.redis_url()
        # No retries on the reader: an error must surface so the reader learns its new client id.
        reader = Redis.from_url(
            url,
            decode_responses=True,
            single_connection_client=True,
            socket_connect_timeout=5,
            socket_timeout=block_s + 5,
            retry=Retry(NoBackoff(), 0),
            client_name=READER_NAME,
        )
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_CONNECTIONS,
            timeout=10,
            decode_responses=True,
            client_name=POOL_NAME,
            socket_connect_timeout=settings.API_REDIS_TIMEOUT_SECONDS,
            socket_timeout=settings.API_REDIS_TIMEOUT_SECONDS,
            # A pooled connection that dropped (Redis restarted, CLIENT KILL) is replaced at once,
            # once; a timed-out call is not retried: the request answers 503 after the timeout.
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            retry_on_error=[RedisConnectionError],
        )
        return cls(settings, reader=reader, redis=Redis(connection_pool=pool), unblock=True)

    # ------------------------------------------------------------------ clients

    async def subscribe(self, user_id: str) -> Subscriber:
        """Register a client; from now on every event of the user after `subscriber.start` reaches it."""
        if self.closing:
            raise Unavailable("the event gateway is shutting down")
        key = self.keys.events(user_id)
        stream = self._streams.get(key) or await self._open_stream(key)
        if self.closing:
            raise Unavailable("the event gateway is shutting down")
        # No await between reading the cursor and joining: no event can slip between the two.
        sub = Subscriber(user_id, stream.cursor, self.settings.SSE_CLIENT_BUFFER)
        stream.subscribers.add(sub)
        self._ensure_reader()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """Forget a client; its user's stream leaves the reader's next XREAD when it was the last."""
        key = self.keys.events(sub.user_id)
        stream = self._streams.get(key)
        if stream is not None:
            stream.subscribers.discard(sub)
            if not stream.subscribers:
                del self._streams[key]
        sub.close("unsubscribed")

    async def _open_stream(self, key: str) -> _UserStream:
        # Clients of one user arriving together share a single tail lookup.
        opening = self._opening.get(key)
        if opening is None:
            opening = asyncio.ensure_future(self.tail(key))
            self._opening[key] = opening
            opening.add_done_callback(lambda _: self._opening.pop(key, None))
        tail = await asyncio.shield(opening)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _UserStream(cursor=tail)
            self._wake_reader()
        return stream

    async def tail(self, key: str) -> StreamId:
        """The id of the stream's last entry (0-0 when it has none)."""
        last: Any = await self.redis.xrevrange(key, count=1)
        return entry_id(last[0][0]) if last else ZERO_ID

    async def replay(self, user_id: str, after: StreamId) -> AsyncIterator[list[Frame]]:
        """The user's stored events after `after`, oldest first, a page at a time."""
        key = self.keys.events(user_id)
        start = f"({after}"
        while True:
            entries: Any = await self.redis.xrange(key, min=start, max="+", count=REPLAY_PAGE)
            if not entries:
                return
            yield [event_frame(raw_id, fields.get("d", "")) for raw_id, fields in entries]
            if len(entries) < REPLAY_PAGE:
                return
            start = f"({entries[-1][0]}"

    # ------------------------------------------------------------------ the reader

    def _ensure_reader(self) -> None:
        if self._reader_task is None or self._reader_task.done():
            self._reader_task = self.loop.create_task(self._read_forever(), name="sse-hub-reader")

    def _wake_reader(self) -> None:
        self._changed.set()
        if self._reading and self._unblock_enabled and (self._kick_task is None or self._kick_task.done()):
            self._kick_task = self.loop.create_task(self._unblock_reader())

    async def _unblock_reader(self) -> None:
        # The XREAD may not have reached Redis yet (UNBLOCK answers 0): try again until it has,
        # or until the reader has started another XREAD, which includes the new streams anyway.
        generation = self._generation
        for _ in range(UNBLOCK_ATTEMPTS):
            if not self._reading or self._reader_id is None or self._generation != generation:
                return
            try:
                if await self.redis.client_unblock(self._reader_id):
                    return
            except RedisError as exc:
                log.debug("CLIENT UNBLOCK failed: %s", exc)
                return
            await asyncio.sleep(0.002)

    async def _read_forever(self) -> None:
        pause = RECONNECT_PAUSE[0]
        while not self.closing:
            for key in [k for k, s in self._streams.items() if not s.subscribers]:
                del self._streams[key]  # opened for a client that went away before joining
            streams = {key: str(s.cursor) for key, s in self._streams.items()}
            self._changed.clear()
            if not streams:
                await self._changed.wait()
                continue
            try:
                reply = await self._read(streams)
            except RedisError as exc:
                self._reader_id = None
                log.warning("event reader: %s: %s; reconnecting in %.2f s", type(exc).__name__, exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, RECONNECT_PAUSE[1])
                continue
            pause = RECONNECT_PAUSE[0]
            if reply:
                self._dispatch(reply)

    async def _read(self, streams: dict[str, str]) -> Any:
        if self._unblock_enabled and self._reader_id is None:
            self._reader_id = int(await self._reader.client_id())
        block = self.settings.SSE_READER_BLOCK_MS if self._unblock_enabled else 250
        self._generation += 1
        self._reading = True
        try:
            return await self._reader.xread(streams, count=READ_COUNT, block=block)  # type: ignore[arg-type]
        finally:
            self._reading = False

    def _dispatch(self, reply: Any) -> None:
        items = reply.items() if isinstance(reply, dict) else reply  # RESP3 answers a map
        for key, entries in items:
            stream = self._streams.get(key)
            if stream is None or not entries:
                continue  # its last client left while the XREAD was out
            frames = [event_frame(raw_id, fields.get("d", "")) for raw_id, fields in entries]
            for frame in frames:
                for sub in list(stream.subscribers):
                    sub.offer(frame)
            stream.cursor = max(stream.cursor, frames[-1].id)

    # ------------------------------------------------------------------ shutdown

    def shutdown(self) -> None:
        """End every open stream now and refuse new ones (synchronous: safe from a signal handler)."""
        if self.closing:
            return
        self.closing = True
        for stream in self._streams.values():
            for sub in list(stream.subscribers):
                sub.close("shutdown")
        self._changed.set()
        if self._reader_task is not None:
            self._reader_task.cancel()

    async def aclose(self) -> None:
        """`shutdown()`, then close the Redis clients."""
        self.shutdown()
        tasks = {t for t in (self._reader_task, self._kick_task) if t is not None and not t.done()}
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: redis-py can swallow a cancel that lands as a connection completes, and the
            # reader then sits in XREAD BLOCK; closing its connection below ends that read.
            await asyncio.wait(tasks, timeout=CLOSE_WAIT)
        await self._reader.aclose()
        await self.redis.aclose()
        for task in tasks:
            # Whatever the cut read raises now (redis-py's pool may object too) is the expected end.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, CLOSE_WAIT)

    def connected(self) -> int:
        """Clients currently subscribed."""
        return sum(len(s.subscribers) for s in self._streams.values())
