"""Redis clients, created lazily and reused (one per URL per process, per event loop)."""

from __future__ import annotations

from typing import Any, TypeAlias

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

# The asyncio Retry: redis.retry.Retry given to an asyncio client never retries (its loop returns
# the call's coroutine before it runs, so the error is raised outside the loop).
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from explorer_jobs.settings import Settings, get_settings

RedisClient: TypeAlias = "Redis | RedisCluster"


def create_redis(
    url: str | None = None,
    *,
    cluster: bool | None = None,
    settings: Settings | None = None,
    timeout: float | None = None,
    **options: Any,
) -> RedisClient:
    """A new asyncio client that decodes replies to str and, when a connection drops, reconnects
    and runs the call again.

    Without `timeout` a call is not bounded (a long-polling worker blocks on BLPOP for seconds on
    purpose; under CLIENT PAUSE it waits for the pause to end) and is retried up to 3 times with
    backoff. With `timeout` (the HTTP functions, which must answer 503 rather than hang), connecting
    and each call are bounded by it, and a call is retried once, at once, and only for a dropped
    connection: a timed-out call is not retried, so the caller waits `timeout` at most.

    A call retried after a dropped connection may already have run: the scripts that must not run
    twice (enqueue, claim) recognise their own replay.
    """
    settings = settings or get_settings()
    url = url or settings.redis_url()
    cluster = settings.REDIS_CLUSTER if cluster is None else cluster
    options.setdefault("decode_responses", True)
    options.setdefault("health_check_interval", 15)
    if timeout is None:
        options.setdefault("socket_connect_timeout", 5)
        options.setdefault("retry", Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=3))
        options.setdefault("retry_on_error", [RedisConnectionError, RedisTimeoutError])
    else:
        options.setdefault("socket_timeout", timeout)
        options.setdefault("socket_connect_timeout", timeout)
        options.setdefault("retry", Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)))
        options.setdefault("retry_on_error", [RedisConnectionError])
    if cluster:
        options.pop("health_check_interval")
        options.pop("retry_on_error")
        return RedisCluster.from_url(url, **options)
    return Redis.from_url(url, **options)
