"""The dev stack the dashboard tests drive: `python -m explorer_jobs dev` as a subprocess.

It runs on a free port, with its home in a temporary folder, the local Redis at a database index of its
own (12, flushed before and after) and a JWT secret of the test's. It can be stopped and started again
on the same port and home, as a restart would.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.processes import wait_until_answering
from tests.support.redis_urls import redis_test_url

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_INSTALL = "apt-get update && apt-get install -y chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    # This machine's network is closed: without these, Chromium keeps dialling Google's services.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# A database index of its own: the fixture flushes it, so no application may use it.
STACK_REDIS_URL = redis_test_url(12)
START_SECONDS = 60
STOP_SECONDS = 20
# Long enough that a training against the stalled server below waits on its connect for the whole test.
TARGET_CONNECT_TIMEOUT = "120"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DevStack:
    """`explorer-jobs dev` in a subprocess; `stop()` and `start()` again keep the port and home."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = home.parent / "dev-stack.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("REDIS_", "JWT_", "DATABASE_", "QUEUE_", "DEV_", "WORKER_"))
        }
        self.env.update(
            REDIS_URL=STACK_REDIS_URL,
            EXPLORER_JOBS_HOME=str(home),
            JWT_SECRET=secrets.token_urlsafe(32),
            # One job at a time: a stalled training keeps the next one queued, for the cancel test.
            WORKER_CONCURRENCY="1",
            TARGET_CONNECT_TIMEOUT_SECONDS=TARGET_CONNECT_TIMEOUT,
            PYTHONUNBUFFERED="1",
        )

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "explorer_jobs", "dev", "--port", str(self.port)],
                cwd=self.home.parent,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_healthy()

    def _wait_until_healthy(self) -> None:
        assert self.proc is not None
        try:
            wait_until_answering(f"{self.base}/healthz", self.proc, START_SECONDS, log=self.log_tail)
        except AssertionError:
            self.proc.kill()  # not left running to take the next test's jobs
            self.proc.wait(timeout=STOP_SECONDS)
            raise

    def stop(self) -> None:
        """Ctrl-C, as a person would; the stack ends its event streams and exits within seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_SECONDS)
            pytest.fail(f"explorer-jobs dev did not stop within {STOP_SECONDS} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {token}"}, timeout=15)


def flush_stack_redis() -> None:
    client = redis.Redis.from_url(STACK_REDIS_URL)
    try:
        client.flushdb()
    finally:
        client.close()
