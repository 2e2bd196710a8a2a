"""Waiting for a child process's HTTP server to answer."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx

POLL_SECONDS = 0.05


def wait_until_answering(
    url: str,
    process: subprocess.Popen[Any],
    timeout: float,
    *,
    any_status: bool = False,
    log: Callable[[], str] = lambda: "",
) -> None:
    """Ask `url` until it answers 200 (any status with `any_status`: its Redis may be down on
    purpose). A child process offers no readiness event, so this polls, bounded by `timeout`;
    a process that exits meanwhile fails at once, with `log()` in the message."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status = httpx.get(url, timeout=2).status_code
            if any_status or status == 200:
                return
        except httpx.TransportError:
            pass
        code = process.poll()
        assert code is None, f"{process.args!r} exited with {code} while starting:\n{log()}"
        assert time.monotonic() < deadline, f"{url} did not answer within {timeout:g} s:\n{log()}"
        time.sleep(POLL_SECONDS)
