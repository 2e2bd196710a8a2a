"""Fixtures of the attack suite: real Redis (its own index), the real store, the real app (in
process, or under uvicorn for the event stream), and throwaway PostgreSQL and MariaDB databases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis

from explorer_jobs.api.clients import close_clients
from explorer_jobs.api.sse.registry import close_hubs
from explorer_jobs.settings import Settings
from tests.api.support import LiveServer
from tests.support.databases import isolated_store  # noqa: F401  (fixture)
from tests.support.redis_urls import flushed_db

from .support import ATTACK_REDIS_URL, attack_settings, real_app


@pytest.fixture
def attack_redis() -> Iterator[redis.Redis]:
    with flushed_db(ATTACK_REDIS_URL) as client:
        yield client


@pytest.fixture
def settings() -> Settings:
    return attack_settings()


@pytest.fixture
async def http(
    isolated_store: Settings,  # noqa: F811
    settings: Settings,
    attack_redis: redis.Redis,
) -> AsyncIterator[httpx.AsyncClient]:
    """The real app in process: routes, auth, the store and the connection lookup as deployed."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(real_app(settings)), base_url="http://test"
    ) as client:
        yield client
    await close_hubs()
    await close_clients()


@pytest.fixture
def live(
    isolated_store: Settings,  # noqa: F811
    settings: Settings,
    attack_redis: redis.Redis,
) -> Iterator[LiveServer]:
    """The real app under uvicorn on a loopback port, for the event stream."""
    server = LiveServer.start(real_app(settings))
    yield server
    if server.thread.is_alive():
        server.stop()
