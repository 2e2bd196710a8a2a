"""A throwaway `redis-server` on a free loopback port, for the bench scripts that need only one."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def throwaway_redis(start_timeout: float = 10.0) -> Iterator[str]:
    """Start a `redis-server` without persistence (never the shared one), yield its URL once it
    answers, and stop it afterwards."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="ej-bench-redis-") as tmp:
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=tmp,
            stdout=subprocess.DEVNULL,
        )
        try:
            url = f"redis://127.0.0.1:{port}/0"
            client = redis.Redis.from_url(url)
            deadline = time.monotonic() + start_timeout
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise
                    time.sleep(0.05)
            client.close()
            yield url
        finally:
            server.terminate()
            server.wait(10)
