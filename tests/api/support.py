"""Helpers for the HTTP tests: tokens, the app under test, a live uvicorn server, SSE reading."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from fastapi import FastAPI
from httpx_sse import ServerSentEvent, aconnect_sse

from explorer_jobs.api.combined import create_combined_app
from explorer_jobs.api.connection_lookup import connection_lookup
from explorer_jobs.api.server import GracefulServer, make_server
from explorer_jobs.errors import NotFound
from explorer_jobs.settings import Settings, get_settings
from tests.support.redis_urls import redis_test_url

SECRET = "test-secret-long-enough-for-hs256-and-hs512-" + "0123456789abcdef" * 2
REDIS_URL = redis_test_url(13)  # this suite's own index, flushed around each test
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def make_token(
    sub: str = "alice", *, key: str = SECRET, algorithm: str = "HS256", ttl: float = 600, **claims: Any
) -> str:
    payload: dict[str, Any] = {"sub": sub, "exp": int(time.time() + ttl), **claims}
    return jwt.encode(payload, key, algorithm=algorithm)


def auth(sub: str = "alice", **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(sub, **claims)}"}


def make_app(settings: Settings, connections: Iterable[tuple[str, str]] | None = ()) -> FastAPI:
    """The combined app with the test's settings and a connections store that knows `connections`
    ((user, connection id) pairs; None: every id of every user)."""
    known = None if connections is None else set(connections)

    async def lookup(user_id: str, connection_id: str) -> None:
        if known is not None and (user_id, connection_id) not in known:
            raise NotFound("connection not found")

    app = create_combined_app()
    app.dependency_overrides[get_settings] = lambda: settings
    app.dependency_overrides[connection_lookup] = lambda: lookup
    return app


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LiveServer:
    """A uvicorn server in a thread of the test process, on a free loopback port."""

    server: GracefulServer
    thread: threading.Thread
    url: str

    @classmethod
    def start(cls, app: FastAPI) -> LiveServer:
        port = free_port()
        server = make_server(app, port=port, log_level="warning", timeout_graceful_shutdown=3)
        thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        # uvicorn offers no event for "listening"; its flag is polled briefly, with a deadline.
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return cls(server, thread, f"http://127.0.0.1:{port}")

    def stop(self) -> float:
        """Ask the server to exit; the seconds it took to stop."""
        began = time.monotonic()
        self.server.should_exit = True
        self.thread.join(STOP_TIMEOUT)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(STOP_TIMEOUT)
            raise AssertionError("the server did not stop within the bound")
        return time.monotonic() - began


class EventReader:
    """An SSE connection that yields events as they come, each read bounded in time."""

    def __init__(self, source: AsyncIterator[ServerSentEvent]) -> None:
        self._events = source
        self.opening: ServerSentEvent | None = None

    async def next(self, within: float = 5.0) -> ServerSentEvent:
        """The next job event (skipping frames that only set an id or the retry)."""
        async with asyncio.timeout(within):
            async for sse in self._events:
                if sse.event and sse.data:
                    return sse
        raise AssertionError("the stream ended")

    async def take(self, n: int, within: float = 5.0) -> list[ServerSentEvent]:
        return [await self.next(within) for _ in range(n)]

    async def ended(self, within: float = 5.0) -> bool:
        """Whether the server ends the stream within `within` s (events before the end are dropped)."""
        async with asyncio.timeout(within):
            async for _ in self._events:
                pass
        return True


@contextlib.asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    within: float = 5.0,
) -> AsyncIterator[EventReader]:
    """Connect, and return once the opening frame (retry, id) came: the client is subscribed then."""
    async with aconnect_sse(client, "GET", url, headers=dict(headers or {}), params=params) as source:
        assert source.response.status_code == 200, source.response.status_code
        events = source.aiter_sse()
        reader = EventReader(events)
        async with asyncio.timeout(within):
            reader.opening = await anext(events)
        yield reader
