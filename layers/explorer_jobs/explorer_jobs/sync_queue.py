"""Queue jobs from blocking code: a cron script, a synchronous web app, a notebook.

The same enqueue script and the same encoding as the asyncio `Queue` (`enqueueing`), over
redis-py's blocking client, so a job queued here is indistinguishable from one queued there. For
one job at a time it is also the faster of the two: a blocking call has no event loop to go
through on the way to the socket and back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from redis import Redis, RedisCluster
from redis.backoff import ExponentialBackoff
from redis.commands.core import Script
from redis.exceptions import ConnectionError as RedisConnectionError
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

    @classmethod
    def connect(cls, settings: Settings | None = None, name: str | None = None) -> SyncQueue:
        """A queue on a new client made from the settings (`REDIS_URL`, `REDIS_CLUSTER`)."""
        settings = settings or get_settings()
        return cls(create_sync_redis(settings), settings, name)

    def close(self) -> None:
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
            replies = self._enqueue(keys=[self.keys.queued], args=args)
            check_refusal(replies, rate_limit)
            for job, reply in zip(encoded, replies, strict=True):
                created = created_job(job, reply)
                results.append(
                    EnqueueResult(created, True) if created else EnqueueResult(self.get(reply[0]), False)
                )
        return results

    def get(self, job_id: str, *, user_id: str | None = None) -> Job:
        """A job; NotFound when unknown or (when `user_id` is given) someone else's."""
        fields: dict[str, str] = self.redis.hgetall(self.keys.job(job_id))  # type: ignore[assignment]
        if not fields or (user_id is not None and fields["user"] != user_id):
            raise NotFound("job not found")
        return Job.from_redis(fields)
