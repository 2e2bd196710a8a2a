"""Fixtures of the HTTP tests: real Redis (database 13, flushed around each test), the combined app
through ASGITransport, and a live uvicorn server for the event stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Protocol

import httpx
import pytest
import redis

from explorer_jobs.api.clients import close_clients
from explorer_jobs.api.sse.registry import close_hubs
from explorer_jobs.queue import Queue
from explorer_jobs.redis_client import create_redis
from explorer_jobs.settings import Settings, get_settings
from explorer_jobs.store.engine import dispose_engines
from explorer_jobs.store.migrate import upgrade_database
from tests.support.redis_urls import flushed_db

from .support import REDIS_URL, SECRET, LiveServer, make_app

CONNECTIONS = {("alice", "c1"), ("alice", "c2"), ("bob", "b1")}


@pytest.fixture(autouse=True)
def clean_redis() -> Iterator[redis.Redis]:
    with flushed_db(REDIS_URL) as client:
        yield client


@pytest.fixture(autouse=True)
def store_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The store reads the process settings (not the app's override): point it at a throwaway file.
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("EXPLORER_JOBS_HOME", str(tmp_path))
    get_settings.cache_clear()
    upgrade_database()
    yield
    dispose_engines()
    get_settings.cache_clear()


def api_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "REDIS_URL": REDIS_URL,
        "JWT_SECRET": SECRET,
        "ENQUEUE_RATE_LIMIT": 1000,
        "SSE_HEARTBEAT_SECONDS": 10.0,
        "SSE_POLL_WAIT_SECONDS": 2.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
def settings() -> Settings:
    return api_settings()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app(settings, CONNECTIONS)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as http:
        yield http
    await close_hubs()
    await close_clients()


@pytest.fixture
async def queue(settings: Settings) -> AsyncIterator[Queue]:
    """The queue as a worker or another function sees it, on the test's own client."""
    client = create_redis(REDIS_URL)
    yield Queue(client, settings)
    await client.aclose()


class StartServer(Protocol):
    def __call__(
        self, settings: Settings, connections: Iterable[tuple[str, str]] | None = ...
    ) -> LiveServer: ...


@pytest.fixture
def live_server() -> Iterator[StartServer]:
    """Start the combined app under uvicorn (in a thread) with these settings; stopped at the end.
    `connections`: the (user, id) pairs that exist; None for every id of every user."""
    servers: list[LiveServer] = []

    def start(settings: Settings, connections: Iterable[tuple[str, str]] | None = CONNECTIONS) -> LiveServer:
        server = LiveServer.start(make_app(settings, connections))
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.thread.is_alive():
            server.stop()
