"""Queue jobs from blocking code: a cron script, a synchronous web app, a notebook.

The same enqueue script and the same encoding as the asyncio `Queue` (`enqueueing`), over
redis-py's blocking client, so a job queued here is indistinguishable from one queued there. For
one job at a time it is also the faster of the two: a blocking call has no event loop to go
through on the way to the socket and back.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol, cast

from pydantic import BaseModel
from redis import Redis, RedisCluster
from redis.backoff import ExponentialBackoff
from redis.commands.core import Script
from redis.connection import Connection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from explorer_jobs.enqueueing import (
    BULK_CHUNK,
    EnqueueRequest,
    EnqueueResult,
    Precondition,
    RateLimit,
    check_refusal,
    created_job,
    encode_request,
    enqueue_args,
)
from explorer_jobs.errors import NotFound
from explorer_jobs.keys import QueueKeys
from explorer_jobs.models import Job
from explorer_jobs.scripts import script_source
from explorer_jobs.settings import Settings, get_settings

# A connection idle longer than this is checked before the enqueue sends on it (_take_connection).
STALE_CHECK_SECONDS = 1.0


class WireConnection(Protocol):
    """What the enqueue's own path uses of a redis-py `Connection` (whose methods are untyped)."""

    retry: Retry

    def send_command(self, *args: Any) -> None: ...
    def read_response(self) -> Any: ...
    def can_read(self) -> bool: ...
    def disconnect(self) -> None: ...


def create_sync_redis(settings: Settings | None = None) -> Redis | RedisCluster:
    """A blocking client with the asyncio client's options: str replies, reconnects with backoff."""
    settings = settings or get_settings()
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": 5,
        "retry": Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=3),
    }
    if settings.REDIS_CLUSTER:
        return RedisCluster.from_url(settings.redis_url(), **options)
    return Redis.from_url(
        settings.redis_url(), retry_on_error=[RedisConnectionError, RedisTimeoutError], **options
    )


class SyncQueue:
    """The producer half of `Queue` for blocking code: enqueue, bulk enqueue, read a job."""

    def __init__(
        self, redis: Redis | RedisCluster, settings: Settings | None = None, name: str | None = None
    ) -> None:
        self.redis = redis
        self.settings = settings or get_settings()
        self.keys = QueueKeys.for_queue(self.settings.KEY_PREFIX, name or self.settings.QUEUE_NAME)
        self._enqueue: Script = redis.register_script(script_source("enqueue"))
        # The enqueue's own idle connections (see _run_enqueue), a few and at most a quarter of the
        # pool's bound, so that the client's other commands never find the pool exhausted by them.
        # Only with redis-py's plain pool: the cluster routes each call by slot, and a Sentinel or
        # a blocking pool has checkout rules of its own that this path would go around.
        pool = redis.connection_pool if isinstance(redis, Redis) else None
        self._idle_cap = min(8, pool.max_connections // 4) if type(pool) is ConnectionPool else 0
        self._pool = pool if self._idle_cap else None
        self._idle: deque[tuple[WireConnection, float]] = deque()  # and when each was put back
        self._pid = os.getpid()

    @classmethod
    def connect(cls, settings: Settings | None = None, name: str | None = None) -> SyncQueue:
        """A queue on a new client made from the settings (`REDIS_URL`, `REDIS_CLUSTER`)."""
        settings = settings or get_settings()
        return cls(create_sync_redis(settings), settings, name)

    def close(self) -> None:
        while self._idle and self._pool is not None:
            self._pool.release(cast(Connection, self._idle.pop()[0]))
        self.redis.close()

    def enqueue(
        self,
        job_type: str,
        payload: dict[str, Any] | BaseModel,
        *,
        user_id: str,
        rate_limit: RateLimit | None = None,
        precondition: Precondition | None = None,
        **options: Any,
    ) -> EnqueueResult:
        """Queue one job (one round trip); raises what `Queue.enqueue` raises."""
        request = EnqueueRequest(job_type, payload, user_id, **options)
        return self.enqueue_many([request], rate_limit, precondition)[0]

    def enqueue_many(
        self,
        requests: Sequence[EnqueueRequest],
        rate_limit: RateLimit | None = None,
        precondition: Precondition | None = None,
    ) -> list[EnqueueResult]:
        """Queue many jobs, a script call per thousand; each job gets its own event."""
        results: list[EnqueueResult] = []
        for start in range(0, len(requests), BULK_CHUNK):
            encoded = [encode_request(r) for r in requests[start : start + BULK_CHUNK]]
            args = [self.keys.prefix, *enqueue_args(self.settings, encoded, rate_limit, precondition)]
            replies = self._run_enqueue(args)
            check_refusal(replies, rate_limit)
            for job, reply in zip(encoded, replies, strict=True):
                created = created_job(job, reply)
                results.append(
                    EnqueueResult(created, True) if created else EnqueueResult(self.get(reply[0]), False)
                )
        return results

    def _run_enqueue(self, args: list[str]) -> Any:
        """The enqueue script's reply, on a connection kept by the queue, with the client's retries.

        redis-py's generic path (`Script.__call__` -> `execute_command`) checks a connection out
        of the pool and back in under its lock, with observability hooks and closures, on every
        call: 25 µs of a 130 µs enqueue on loopback (bench/enqueue_breakdown.py). Here the
        connection used last is taken from a free list and the command written and read directly.
        As there, a dropped connection is reconnected and the call sent again, which the script
        recognises as its own replay.
        """
        if self._pool is None:
            return self._enqueue(keys=[self.keys.queued], args=args)
        conn = self._take_connection(self._pool)
        script = self._enqueue

        def send() -> Any:
            conn.send_command("EVALSHA", script.sha, 1, self.keys.queued, *args)
            try:
                return conn.read_response()
            except NoScriptError:  # a restart, a failover or SCRIPT FLUSH emptied the script cache
                conn.send_command("EVAL", script.script, 1, self.keys.queued, *args)
                return conn.read_response()

        try:
            return conn.retry.call_with_retry(send, lambda _error: conn.disconnect())
        except BaseException:
            conn.disconnect()  # a reply may be left unread: never send on this socket again
            raise
        finally:
            if len(self._idle) < self._idle_cap:
                self._idle.append((conn, time.monotonic()))
            else:
                self._pool.release(cast(Connection, conn))

    def _take_connection(self, pool: ConnectionPool) -> WireConnection:
        """The connection used last (the free list is a deque: LIFO, safe across threads), or one
        from the pool."""
        if self._pid != os.getpid():  # a forked child: the parent's sockets are not ours
            self._idle.clear()
            self._pid = os.getpid()
        try:
            conn, since = self._idle.pop()
        except IndexError:
            return cast(WireConnection, pool.get_connection())
        # A socket that reads while idle was closed by the server (its idle timeout, a restart):
        # reconnect now rather than fail the send and wait out the retry's backoff (0.1 s). The
        # check is a poll(), 2.5 µs of CPU an enqueue, so the pool's check on every checkout is
        # made here only after a second's rest; a connection that died sooner is the retry's.
        if time.monotonic() - since > STALE_CHECK_SECONDS:
            try:
                stale = conn.can_read()
            except (RedisConnectionError, RedisTimeoutError):
                stale = True
            if stale:
                conn.disconnect()
        return conn

    def get(self, job_id: str, *, user_id: str | None = None) -> Job:
        """A job; NotFound when unknown or (when `user_id` is given) someone else's."""
        fields: dict[str, str] = self.redis.hgetall(self.keys.job(job_id))  # type: ignore[assignment]
        if not fields or (user_id is not None and fields["user"] != user_id):
            raise NotFound("job not found")
        return Job.from_redis(fields)
