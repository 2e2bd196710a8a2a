"""`explorer-jobs dev` as a newcomer runs it: no Redis answering, so it starts its embedded Valkey;
the demo database trains from the printed curl commands; Ctrl-C leaves no process behind."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def processes_mentioning(text: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if text in line and "ps -eo" not in line]


@pytest.fixture
def dev_stack(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str], Path]]:
    home = tmp_path / "home"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "JWT_", "DATABASE_", "QUEUE_"))}
    # Nothing answers on this port: dev must fall back to its embedded server.
    env.update(
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", EXPLORER_JOBS_HOME=str(home), PYTHONUNBUFFERED="1"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "explorer_jobs", "dev", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    printed: dict[str, str] = {"base": f"http://127.0.0.1:{port}"}
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    for line in proc.stdout:  # blocks on the child's output; the child's own start is bounded
        if m := re.search(r"export TOKEN=(\S+)", line):
            printed["token"] = m.group(1)
        if m := re.search(r"/api/connections/([0-9a-f-]+)/train-schema", line):
            printed["connection"] = m.group(1)
        if "embedded Valkey" in line:
            printed["embedded"] = line.strip()
        if "Uvicorn running" in line or time.monotonic() > deadline:
            break
    try:
        yield proc, printed, home
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_dev_starts_embedded_redis_trains_the_demo_and_stops_cleanly(dev_stack) -> None:  # type: ignore[no-untyped-def]
    proc, printed, home = dev_stack
    assert {"token", "connection", "embedded"} <= printed.keys(), printed
    assert str(home / "redis") in printed["embedded"]
    headers = {"Authorization": f"Bearer {printed['token']}"}
    with httpx.Client(base_url=printed["base"], headers=headers, timeout=10) as http:
        queued = http.post(f"/api/connections/{printed['connection']}/train-schema")
        assert queued.status_code == 202, queued.text
        job_id = queued.json()["jobId"]
        # Replay from the beginning of the stream: the job may have finished already.
        with http.stream("GET", "/api/jobs/notifications/stream", params={"lastEventId": "0-0"}) as stream:
            seen = []
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    if event["jobId"] == job_id:
                        seen.append(event["type"])
                        if event["type"] in ("job_completed", "job_failed"):
                            break
        assert seen[-1] == "job_completed", seen
        cache = http.get(f"/api/connections/{printed['connection']}/schema-cache")
        assert cache.status_code == 200
        tables = {t["name"] for s in cache.json()["schemas"] for t in s["tables"]}
        assert {"customers", "orders", "order_items", "products"} <= tables
    assert (home / "redis" / "appendonlydir").exists() or any((home / "redis").glob("*.aof*"))

    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 0
    assert processes_mentioning(str(home)) == [], "the embedded server stopped with dev"
