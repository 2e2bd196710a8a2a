"""`explorer-jobs api` as a process: it serves every function, and SIGTERM or Ctrl-C (SIGINT) ends
open event streams and stops it within seconds."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import wait_until_answering

from .support import REDIS_URL, SECRET, auth, free_port, open_stream

STREAM = "/api/jobs/notifications/stream"
START_TIMEOUT = 20.0


@pytest.fixture
def api_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": REDIS_URL,
        "JWT_SECRET": SECRET,
        "EXPLORER_JOBS_HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "explorer_jobs", "api", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(f"{url}/healthz", process, START_TIMEOUT)
    except AssertionError:
        process.kill()
        raise AssertionError(f"explorer-jobs api did not start: {process.stderr.read()!r}") from None  # type: ignore[union-attr]
    yield process, url
    if process.poll() is None:
        process.kill()
    process.wait(10)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_ends_streams_and_stops(
    api_process: tuple[subprocess.Popen[bytes], str], sig: signal.Signals
) -> None:
    process, url = api_process
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/api/queues", headers=auth())).status_code == 200
        async with open_stream(http, STREAM, headers=auth()) as events:
            began = time.monotonic()
            process.send_signal(sig)
            assert await events.ended(within=5)
    code = await asyncio.to_thread(process.wait, 10)
    assert time.monotonic() - began < 5.0
    # uvicorn re-raises the signal it handled once it has stopped: the process ends by that signal.
    assert code in (0, -sig), code
