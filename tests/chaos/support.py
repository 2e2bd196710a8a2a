"""What the chaos tests share: their scale (short by default, CHAOS_* to scale up), real
`explorer-jobs worker` processes with their logs kept, and readers of the marker file and of a
user's whole event stream.

Short form (CI): CHAOS_JOBS=300 CHAOS_KILLS=10 CHAOS_REDIS_KILLS=5 CHAOS_EXAMPLES=100 CHAOS_STEPS=30.
Full form: CHAOS_FULL=1 (2,000 jobs, 100 kills, 20 Redis kills, 200 examples x 50 steps); any
single CHAOS_* variable overrides either form.
"""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from explorer_jobs.queue import Queue

ROOT = Path(__file__).resolve().parents[2]
FULL = os.environ.get("CHAOS_FULL", "") not in ("", "0")

_SHORT = {"JOBS": 300, "KILLS": 10, "REDIS_KILLS": 5, "EXAMPLES": 100, "STEPS": 30}
_FULL = {"JOBS": 2000, "KILLS": 100, "REDIS_KILLS": 20, "EXAMPLES": 200, "STEPS": 50}


def scale(name: str) -> int:
    """CHAOS_<name> if set, else the full or short default."""
    raw = os.environ.get(f"CHAOS_{name}")
    return int(raw) if raw else (_FULL if FULL else _SHORT)[name]


# Every wait in these tests is bounded by this (seconds) unless a test derives its own bound.
WAIT = 30.0
# Events are read back whole at the end of a run: the stream must not be trimmed under the test.
EVENTS_MAXLEN = 10_000_000
WORKER_COMMAND = [sys.executable, "-m", "explorer_jobs", "worker", "--import", "tests.support.jobs"]
_WORKER_ID = re.compile(r"worker ([0-9a-f]+) started")


@dataclass
class WorkerProc:
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def worker_id(self) -> str | None:
        """The id its tokens start with ("<id>:<attempt>"), once it has logged its start."""
        match = _WORKER_ID.search(self.log.read_text(errors="replace")) if self.log.exists() else None
        return match.group(1) if match else None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Workers:
    """`explorer-jobs worker --import tests.support.jobs` processes on one queue; each one's
    stderr (INFO: its id, and warnings such as "outcome refused") is kept in a file."""

    def __init__(self, redis_url: str, queue_name: str, log_dir: Path, **env: str) -> None:
        self.env = dict(
            os.environ,
            REDIS_URL=redis_url,
            QUEUE_NAME=queue_name,
            PYTHONPATH=str(ROOT),
            LOG_LEVEL="INFO",
            LOG_FORMAT="text",
            EVENTS_MAXLEN=str(EVENTS_MAXLEN),
            **env,
        )
        self.log_dir = log_dir
        self.all: list[WorkerProc] = []

    def start(self, concurrency: int = 2) -> WorkerProc:
        log = self.log_dir / f"worker-{len(self.all)}.log"
        with log.open("wb") as err:
            proc = subprocess.Popen(
                [*WORKER_COMMAND, "--concurrency", str(concurrency)],
                env=self.env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        worker = WorkerProc(proc, log)
        self.all.append(worker)
        return worker

    def wait_for_id(self, worker: WorkerProc, timeout: float = WAIT) -> str:
        """Its worker id, from its first log line (polled: a log file has no event to await)."""
        deadline = time.monotonic() + timeout
        while (worker_id := worker.worker_id) is None:
            assert worker.proc.poll() is None, f"worker exited:\n{worker.log_text()}"
            assert time.monotonic() < deadline, "worker did not log its start"
            time.sleep(0.02)
        return worker_id

    def stop_all(self, timeout: float = 20.0) -> None:
        """SIGTERM every live worker; SIGKILL one that has not exited by the deadline."""
        for w in self.all:
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)
        for w in self.all:
            try:
                w.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait(timeout=timeout)

    def logs(self) -> str:
        return "\n".join(w.log_text() for w in self.all)


def executions(marker: Path) -> collections.Counter[str]:
    """How many times each job's processor started (the echo job's marker line "<jobId> <attempt>")."""
    lines = marker.read_text().splitlines() if marker.exists() else []
    return collections.Counter(line.split()[0] for line in lines)


async def all_events(queue: Queue, user_id: str) -> list[dict[str, Any]]:
    entries = await queue.redis.xrange(queue.keys.events(user_id))
    return [json.loads(fields["d"]) | {"_id": entry_id} for entry_id, fields in entries]


def event_ms(event: dict[str, Any]) -> int:
    """When Redis appended the event: the ms part of its stream id (the server's clock)."""
    return int(str(event["_id"]).split("-")[0])


async def await_stream(queue: Queue, user_id: str, after: str, timeout: float) -> None:
    """Block (XREAD BLOCK) until the user's stream has an entry after `after` or `timeout` passes:
    a loop that must also look at something else (a process's exit) waits here, not in a sleep."""
    await queue.redis.xread({queue.keys.events(user_id): after}, block=max(1, int(timeout * 1000)))


def wait_for_line(path: Path, line: str, timeout: float) -> None:
    """Poll a marker file (a file write has no event to await) until it holds `line`; bounded."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and line in path.read_text().splitlines()):
        assert time.monotonic() < deadline, f"{line!r} never appeared in {path}"
        time.sleep(0.002)
