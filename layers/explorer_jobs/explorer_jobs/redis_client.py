"""Redis clients, created lazily and reused (one per URL per process, per event loop)."""

from __future__ import annotations

from typing import Any, TypeAlias

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from explorer_jobs.settings import Settings, get_settings

RedisClient: TypeAlias = "Redis | RedisCluster"


def create_redis(
    url: str | None = None, *, cluster: bool | None = None, settings: Settings | None = None, **options: Any
) -> RedisClient:
    """A new asyncio client that decodes replies to str and retries dropped connections with backoff.

    `socket_timeout` is left unset: a long-polling worker blocks on BLPOP for seconds on purpose.
    """
    settings = settings or get_settings()
    url = url or settings.redis_url()
    cluster = settings.REDIS_CLUSTER if cluster is None else cluster
    options.setdefault("decode_responses", True)
    options.setdefault("socket_connect_timeout", 5)
    options.setdefault("health_check_interval", 15)
    options.setdefault("retry", Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=3))
    options.setdefault("retry_on_error", [RedisConnectionError, RedisTimeoutError])
    if cluster:
        options.pop("health_check_interval")
        options.pop("retry_on_error")
        return RedisCluster.from_url(url, **options)
    return Redis.from_url(url, **options)
