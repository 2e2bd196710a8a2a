"""The HTTP side of the Redis fault tests as real processes: `explorer-jobs api` on a throwaway
Redis, with its own migrated SQLite store, a small SQLite database to train and saved connections
to it; the workers (`support.Workers`) share the store, so each training saves a cache version
under its job id, which counts the trainings that ran to the end."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from tests.api.support import SECRET, auth, free_port
from tests.support.processes import wait_until_answering

from .support import EVENTS_MAXLEN, ROOT, WAIT, Workers

USER = "faulty"
STREAM = "/api/jobs/notifications/stream"
TARGET_SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS orders (
  id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id), placed_at TEXT);
CREATE INDEX IF NOT EXISTS orders_by_customer ON orders(customer_id);
"""
_WORKERS_OWN = {"REDIS_URL", "QUEUE_NAME", "PYTHONPATH", "LOG_LEVEL", "LOG_FORMAT", "EVENTS_MAXLEN"}
# Each training saves a cache version: keep every one, so none is pruned before it is counted.
VERSIONS_KEPT = 1_000_000


def stack_env(redis_url: str, queue_name: str, home: Path, **overrides: str) -> dict[str, str]:
    """What the API process and the workers share: Redis, the queue, the store, the secrets."""
    return {
        "REDIS_URL": redis_url,
        "QUEUE_NAME": queue_name,
        "EXPLORER_JOBS_HOME": str(home),
        "DATABASE_URL": f"sqlite:///{home / 'store.db'}",
        "ALLOW_SQLITE_CONNECTIONS": "true",
        "JWT_SECRET": SECRET,
        "ENQUEUE_RATE_LIMIT": "0",
        "EVENTS_MAXLEN": str(EVENTS_MAXLEN),
        "SCHEMA_CACHE_VERSIONS_KEPT": str(VERSIONS_KEPT),
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "text",
        **overrides,
    }


@dataclass
class ApiProcess:
    """`explorer-jobs api` on a free port, its stderr kept in a log file."""

    env: dict[str, str]
    home: Path
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.home / "api.log"

    def start(self, timeout: float = WAIT) -> str:
        port = free_port()
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "explorer_jobs", "api", "--port", str(port)],
                env=self.env,
                cwd=self.home,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self.url = f"http://127.0.0.1:{port}"
        try:
            wait_until_answering(
                f"{self.url}/healthz", self.proc, timeout, any_status=True, log=self.log_text
            )
        except AssertionError:
            self.stop()
            raise
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Stack:
    """The API process, the workers and the store of one test."""

    home: Path
    env: dict[str, str]
    api: ApiProcess
    workers: Workers
    connections: list[str] = field(default_factory=list)

    @classmethod
    @contextlib.contextmanager
    def running(cls, redis_url: str, queue_name: str, home: Path, **overrides: str) -> Iterator[Stack]:
        """Migrate the store and start the API (Redis may be down); the caller starts workers.
        Everything is stopped on exit."""
        env = stack_env(redis_url, queue_name, home, **overrides)
        process_env = {**_inherited_env(), **env}
        subprocess.run(
            [sys.executable, "-m", "explorer_jobs", "migrate"],
            env=process_env,
            cwd=home,
            check=True,
            capture_output=True,
            timeout=WAIT,
        )
        with sqlite3.connect(home / "target.db") as db:
            db.executescript(TARGET_SCHEMA)
        api = ApiProcess(process_env, home)
        # Workers sets Redis, the queue, logging and the stream length itself.
        worker_env = {k: v for k, v in env.items() if k not in _WORKERS_OWN}
        workers = Workers(redis_url, queue_name, home, **worker_env)
        stack = cls(home, env, api, workers)
        try:
            api.start()
            yield stack
        finally:
            workers.stop_all()
            api.stop()

    async def save_connections(self, http: httpx.AsyncClient, count: int) -> list[str]:
        """`count` connections of USER to the target database (the store only: no Redis needed).
        Several, so concurrent trainings seldom race for the same cache version."""
        for i in range(count):
            body = {"name": f"faults {i}", "dialect": "sqlite", "database": str(self.home / "target.db")}
            response = await http.post("/api/connections", json=body, headers=auth(USER))
            assert response.status_code == 201, response.text
            self.connections.append(response.json()["id"])
        return self.connections

    def trainings_saved(self) -> dict[str, int]:
        """How many cache versions each job id saved: the trainings that ran to the end."""
        with contextlib.closing(sqlite3.connect(self.home / "store.db", timeout=30)) as db:
            rows = db.execute("SELECT job_id, COUNT(*) FROM schema_caches GROUP BY job_id").fetchall()
        return {str(job_id): int(n) for job_id, n in rows}


def _inherited_env() -> dict[str, str]:
    # The test run's own environment minus anything that would point a child elsewhere.
    return {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "DATABASE_", "QUEUE_"))}


@dataclass
class Timed:
    """An HTTP answer: its status, how long it took, and its JSON body (None if not JSON)."""

    status: int
    seconds: float
    body: Any = None


async def timed(http: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Timed:
    began = time.monotonic()
    response = await http.request(method, path, **kwargs)
    seconds = time.monotonic() - began
    is_json = response.headers.get("content-type", "").startswith("application/json")
    return Timed(response.status_code, seconds, response.json() if is_json else None)


class EventFollower:
    """Reads USER's event stream through the gateway, as EventSource does: on a dropped stream
    (and, to exercise the replay, after every `reconnect_every` events) it connects again with
    Last-Event-ID. Runs until cancelled."""

    def __init__(self, http: httpx.AsyncClient, reconnect_every: int) -> None:
        self.http = http
        self.reconnect_every = reconnect_every
        self.seen: list[str] = []  # event ids, in the order they arrived
        self.reconnects = 0
        self.refused = 0  # stream requests answered with a status other than 200 (503)
        self._ids: set[str] = set()
        self._arrived = asyncio.Condition()

    async def run(self) -> None:
        while True:
            # From the stream's start the first time: no event before the test's first is missed.
            headers = {**auth(USER), "Last-Event-ID": self.seen[-1] if self.seen else "0-0"}
            with contextlib.suppress(httpx.TransportError):
                async with aconnect_sse(self.http, "GET", STREAM, headers=headers) as source:
                    if source.response.status_code != 200:
                        self.refused += 1
                        # EventSource waits (`retry:`) before it tries again; so does this reader,
                        # briefly: the test's bound is on the whole run.
                        await asyncio.sleep(0.05)
                        continue
                    got = 0
                    async for sse in source.aiter_sse():
                        if sse.event and sse.data:
                            async with self._arrived:
                                self.seen.append(sse.id)
                                self._ids.add(sse.id)
                                self._arrived.notify_all()
                            got += 1
                            if got >= self.reconnect_every:
                                break
            self.reconnects += 1

    async def wait_for(self, event_id: str, timeout: float) -> None:
        """Until the event `event_id` has arrived (bounded)."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: event_id in self._ids)
