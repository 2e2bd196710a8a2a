"""Concurrent calls of one Lua script, sent to Redis together on a connection the batcher reads itself.

An HTTP function serves many requests at once on one event loop, and each enqueue is one script
call. Sent one by one through redis-py's asyncio command path, every call pays a pool checkout, a
write, a task wake-up and a timeout context per reply: about 0.15 ms of CPU on this project's bench
machine, more than FastAPI's own work for a request. Here:

- Calls made while a batch is on the wire wait for it and go out as the next batch: one write for
  all of them (at most `MAX_BATCH`). A call made when nothing is on the wire goes out at the end of
  the current turn of the event loop, with whatever else was made in that turn: batching adds no
  wait when the function is idle.
- The batcher keeps one connection for itself. redis-py opens it, so AUTH, TLS, SELECT and the
  client's retries of connecting are as configured; then the batcher reads it with a protocol of
  its own, a hiredis reader that hands each reply to its caller's future as it arrives. No task,
  no pool checkout and no timeout context per batch or per reply: a call costs about 26 µs of
  client CPU at a batch of 16 and 80 µs alone, against 85 and 152 µs through redis-py's `Script`
  (`bench/async_enqueue_cpu.py`).

Each call is still its own script run, atomic on its own, with its own reply or error: batching
changes how calls travel, not what any of them does.

When things go wrong:
- Redis answers NOSCRIPT (restarted, or SCRIPT FLUSH): the refused calls, which did not run, go
  again as EVAL, which also loads the script for the calls after them.
- The connection drops: the calls left unanswered go again on a new connection, each at most as
  many times as the client's retry policy allows. Such a call may already have run, so only
  scripts that recognise their own replay (enqueue does) belong here.
- The client has a socket timeout (the HTTP functions): a call not answered within it of being
  made fails with redis' TimeoutError and is not sent again. The connection is dropped with it,
  since a late reply could no longer be told apart.
- A caller that gave up (was cancelled) before its batch left is not sent.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any, TypeGuard

import hiredis
from hiredis import pack_command
from redis._parsers import BaseParser
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Calls per batch: bounds one batch's time inside Redis, which serves no one else meanwhile.
MAX_BATCH = 128


@dataclass(slots=True, eq=False)
class _Call:
    keys: list[str]
    args: list[Any]
    reply: asyncio.Future[Any]
    deadline: float | None  # loop time by which it must be answered (None: no timeout)
    resends: int = 0  # times sent again after a dropped connection
    refusals: int = 0  # times Redis answered NOSCRIPT
    as_eval: bool = False  # send the script's text (EVAL), not its hash


class ScriptBatcher:
    """`await batcher(keys, args)` runs the script like `script(keys=keys, args=args)` would.

    For a non-cluster client speaking RESP2 (`usable_with` tells). One batcher serves one event
    loop at a time; a call from another loop (a test's next loop) starts over on a new connection.
    """

    def __init__(self, redis: Redis, script: AsyncScript, *, max_batch: int = MAX_BATCH) -> None:
        self._redis = redis
        self._script = script
        self._max_batch = max_batch
        self._timeout: float | None = redis.connection_pool.connection_kwargs.get("socket_timeout")
        self._waiting: deque[_Call] = deque()
        self._link: _Link | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._flush_scheduled = False
        self._expiry: asyncio.TimerHandle | None = None  # fails waiting calls while connecting
        # Connections whose link has closed, given back to redis-py's pool on the next connect.
        self._retired: list[AbstractConnection] = []

    @staticmethod
    def usable_with(redis: object) -> TypeGuard[Redis]:
        """Whether `redis` is a client this batcher can read: a plain (non-cluster) asyncio client on
        RESP2, the protocol the hiredis reader here is set up for."""
        if not isinstance(redis, Redis):
            return False
        return redis.connection_pool.connection_kwargs.get("protocol") in (None, 2, "2")

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._start_over(loop)
        deadline = None if self._timeout is None else loop.time() + self._timeout
        call = _Call(keys, args, loop.create_future(), deadline)
        self._waiting.append(call)
        link = self._link
        if link is None:
            self._connect_soon()
        elif not link.in_flight and not self._flush_scheduled:
            # At the end of this turn of the loop, with the calls the other ready tasks make in it.
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await call.reply

    # ------------------------------------------------------------------ sending

    def _flush(self) -> None:
        """Send the next batch, unless one is on the wire (its last reply sends the next)."""
        self._flush_scheduled = False
        link = self._link
        if link is None or link.in_flight or not self._waiting:
            return
        if link.transport.is_closing():  # closed under us (the client's aclose): connect again
            link.drop(None)
            return
        now = link.loop.time()
        batch: list[_Call] = []
        while self._waiting and len(batch) < self._max_batch:
            call = self._waiting.popleft()
            if call.reply.done():  # its caller gave up before it left: not sent
                continue
            if call.deadline is not None and call.deadline <= now:  # waited out its time
                call.reply.set_exception(RedisTimeoutError("Timeout waiting for a Redis connection"))
                continue
            batch.append(call)
        if batch:
            self._send_batch(link, batch)

    def _send_batch(self, link: _Link, batch: list[_Call]) -> None:
        script = self._script
        packed = b"".join(
            pack_command(
                ("EVAL", script.script, len(c.keys), *c.keys, *c.args)
                if c.as_eval
                else ("EVALSHA", script.sha, len(c.keys), *c.keys, *c.args)
            )
            for c in batch
        )
        link.send(packed, batch)

    # ------------------------------------------------------------------ the connection

    async def _connect(self) -> None:
        """Open a connection through redis-py's pool and start reading it; on failure, every
        waiting call fails with the error redis-py raised."""
        pool = self._redis.connection_pool
        try:
            retired, self._retired = self._retired, []
            for old in retired:  # closed already: back to the pool, which reconnects it when used
                await old.disconnect()
                await pool.release(old)
            conn: AbstractConnection = await pool.get_connection()  # type: ignore[no-untyped-call]
            try:
                self._link = _Link.take_over(self, conn)
            except BaseException:
                await conn.disconnect()
                await pool.release(conn)
                raise
        except BaseException as exc:
            error = exc if isinstance(exc, Exception) else RedisConnectionError("Redis connection aborted")
            while self._waiting:
                call = self._waiting.popleft()
                if not call.reply.done():
                    call.reply.set_exception(error)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._connecting = None
        self._flush()

    def _link_closed(self, link: _Link, exc: Exception | None) -> None:
        """The link's connection is gone: send its unanswered calls again on a new one (within the
        client's retries), and connect again if any call is waiting."""
        if self._link is link:
            self._link = None
        self._retired.append(link.connection)
        # Refused with NOSCRIPT, they did not run: they go again, ahead of the rest.
        self._waiting.extendleft(reversed(link.refused))
        link.refused = []
        error = RedisConnectionError(f"Error while reading from Redis: {exc or 'connection closed'}")
        retries = link.connection.retry.get_retries()
        again: list[_Call] = []
        while link.in_flight:
            call = link.in_flight.popleft()
            if call.reply.done():
                continue
            if call.resends < retries:
                call.resends += 1
                again.append(call)
            else:
                call.reply.set_exception(error)
        self._waiting.extendleft(reversed(again))  # ahead of the calls made after them
        if self._waiting:
            self._connect_soon()

    def _connect_soon(self) -> None:
        """Connect, unless already connecting; meanwhile the waiting calls keep their deadlines."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if self._connecting is None:
            self._connecting = loop.create_task(self._connect())
        if self._timeout is not None and self._expiry is None:
            deadline = min(c.deadline for c in self._waiting if c.deadline is not None)
            self._expiry = loop.call_at(deadline, self._expire_waiting)

    def _expire_waiting(self) -> None:
        """Fail the waiting calls whose time is up (a connect can take longer than a call may)."""
        self._expiry = None
        assert self._loop is not None
        now = self._loop.time()
        kept: deque[_Call] = deque()
        for call in self._waiting:
            if call.reply.done():
                continue
            if call.deadline is not None and call.deadline <= now:
                call.reply.set_exception(RedisTimeoutError("Timeout connecting to Redis"))
            else:
                kept.append(call)
        self._waiting = kept
        if kept and self._link is None:
            self._connect_soon()

    def _start_over(self, loop: asyncio.AbstractEventLoop) -> None:
        """First call, or a call from a new event loop: what belonged to the old one is let go, not
        touched (its transport belongs to that loop, which no longer runs)."""
        self._link = None
        self._connecting = None
        self._flush_scheduled = False
        self._expiry = None
        self._waiting.clear()
        self._retired.clear()
        self._loop = loop


class _Link(asyncio.Protocol):
    """The batcher's connection: writes batches and hands each reply to the call it answers."""

    def __init__(
        self, batcher: ScriptBatcher, connection: AbstractConnection, transport: asyncio.Transport
    ) -> None:
        self.batcher = batcher
        self.connection = connection
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        encoder = connection.encoder  # replies decoded as the client decodes them
        decoding = {"encoding": encoder.encoding, "errors": encoder.encoding_errors}
        self.reader = hiredis.Reader(
            protocolError=InvalidResponse,
            replyError=ResponseError,
            **(decoding if encoder.decode_responses else {}),
        )
        self.in_flight: deque[_Call] = deque()
        # Calls of the batch on the wire that Redis refused with NOSCRIPT (they did not run): sent
        # again once the batch is complete. Kept here, not per read: a batch's replies can come in
        # several reads.
        self.refused: list[_Call] = []
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False
        # redis-py's own protocol for this transport, told when it closes: redis-py's disconnect
        # waits for that.
        self.replaced: asyncio.BaseProtocol | None = None

    @classmethod
    def take_over(cls, batcher: ScriptBatcher, connection: AbstractConnection) -> _Link:
        """Read `connection` from now on instead of redis-py. The pool hands out only connections
        with nothing left unread, so no reply is lost on the switch."""
        writer: asyncio.StreamWriter | None = getattr(connection, "_writer", None)
        if writer is None or writer.transport.is_closing():
            raise RedisConnectionError("Redis connection closed while being set up")
        transport: asyncio.Transport = writer.transport  # type: ignore[assignment]
        link = cls(batcher, connection, transport)
        link.replaced = transport.get_protocol()
        transport.set_protocol(link)
        return link

    def send(self, packed: bytes, batch: list[_Call]) -> None:
        self.in_flight.extend(batch)
        self.transport.write(packed)
        deadlines = [c.deadline for c in batch if c.deadline is not None]
        if deadlines:
            self.timer = self.loop.call_at(min(deadlines), self._timed_out)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        in_flight = self.in_flight
        refused = self.refused
        while in_flight:
            try:
                reply = reader.gets()
            except InvalidResponse as exc:  # out of step with Redis: nothing more can be trusted
                self.drop(exc)
                return
            if reply is False:  # the rest of the batch has not arrived yet
                return
            call = in_flight.popleft()
            if call.reply.done():  # its caller was cancelled after it left
                continue
            if isinstance(reply, ResponseError):
                # redis-py's own mapping, so callers see the errors they saw before (NoScriptError...)
                error = BaseParser.parse_error(reply.args[0])  # type: ignore[no-untyped-call]
                if isinstance(error, NoScriptError) and not call.as_eval:
                    # Sent again: the first as EVAL, which loads the script for the others behind
                    # it (and any refused twice, should the script be flushed again meanwhile).
                    call.refusals += 1
                    call.as_eval = not refused or call.refusals > 1
                    refused.append(call)
                    continue
                call.reply.set_exception(error)
            else:
                call.reply.set_result(reply)
        try:
            unasked = reader.gets() is not False
        except InvalidResponse:
            unasked = True
        if unasked:  # a reply nobody asked for: out of step with Redis
            self.drop(InvalidResponse("unexpected reply from Redis"))
            return
        # The batch is complete: the next one goes at once.
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        batcher = self.batcher
        if refused:
            batcher._waiting.extendleft(reversed(refused))
            self.refused = []
        batcher._flush()

    def _timed_out(self) -> None:
        self.timer = None
        error = RedisTimeoutError("Timeout reading from Redis")
        while self.in_flight:
            call = self.in_flight.popleft()
            if not call.reply.done():
                call.reply.set_exception(error)
        self.drop(None)

    def drop(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            self.transport.abort()  # connection_lost follows, on the next turn of the loop
            self.batcher._link_closed(self, exc)

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self.replaced is not None:
            self.replaced.connection_lost(exc)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.closed:
            self.closed = True
            self.batcher._link_closed(self, exc)
