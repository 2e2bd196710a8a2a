"""Real worker processes (`explorer-jobs worker`) sharing one queue: exactly-once under load,
and a worker SIGKILLed mid-job."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from explorer_jobs.models import JobStatus
from explorer_jobs.queue import EnqueueRequest, Queue
from explorer_jobs.redis_client import RedisClient
from tests.conftest import TEST_REDIS_URL, queue_settings
from tests.support.events import has_event, wait_for_events

ROOT = Path(__file__).resolve().parents[2]
USER = "alice"

pytestmark = pytest.mark.slow


class WorkerProcs:
    def __init__(self, queue_name: str, lease: float) -> None:
        self.env = dict(
            os.environ,
            REDIS_URL=TEST_REDIS_URL,
            QUEUE_NAME=queue_name,
            LEASE_SECONDS=str(lease),
            PYTHONPATH=str(ROOT),
            LOG_LEVEL="WARNING",
        )
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, concurrency: int = 5) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "explorer_jobs",
                "worker",
                "--import",
                "tests.support.jobs",
                "--concurrency",
                str(concurrency),
            ],
            env=self.env,
            cwd=ROOT,
        )
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def workers(redis: RedisClient) -> Iterator[tuple[Queue, WorkerProcs]]:
    settings = queue_settings(TEST_REDIS_URL, LEASE_SECONDS=1.5)
    procs = WorkerProcs(settings.QUEUE_NAME, settings.LEASE_SECONDS)
    yield Queue(redis, settings), procs
    procs.stop_all()


def marker_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def test_four_workers_complete_each_of_8000_jobs_exactly_once(workers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    queue, procs = workers
    marker = tmp_path / "runs.txt"
    requests = [EnqueueRequest("test_echo", {"value": i, "marker": str(marker)}, USER) for i in range(8000)]
    jobs = [r.job.job_id for r in await queue.enqueue_many(requests)]
    for _ in range(4):
        procs.start()
    deadline = time.monotonic() + 90
    while True:
        [counts] = await queue.counts(USER)
        if counts.counts["completed"] >= 8000:
            break
        assert time.monotonic() < deadline, f"only {counts.counts} after 90 s"
        await wait_for_events(queue, USER, lambda _e: True, timeout=1)  # block on the stream, not a sleep
    runs = collections.Counter(line.split()[0] for line in marker_lines(marker))
    assert set(runs) == set(jobs)
    assert max(runs.values()) == 1, "no job ran twice"
    assert counts.counts == {
        "queued": 0,
        "delayed": 0,
        "active": 0,
        "completed": 8000,
        "failed": 0,
        "cancelled": 0,
    }


async def test_a_job_of_a_killed_worker_runs_again_elsewhere_and_completes_once(
    workers, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    queue, procs = workers
    marker = tmp_path / "runs.txt"
    gate = tmp_path / "gate"
    job = (
        await queue.enqueue(
            "test_echo", {"value": 1, "marker": str(marker), "gate": str(gate), "steps": 1}, user_id=USER
        )
    ).job
    victim = procs.start(concurrency=1)
    await wait_for_events(queue, USER, has_event(job.job_id, "job_progress"))  # it is mid-job
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    gate.touch()  # the next owner may finish
    procs.start(concurrency=1)
    events = await wait_for_events(queue, USER, has_event(job.job_id, "job_completed"), timeout=20)
    done = await queue.get(job.job_id)
    assert done.status is JobStatus.COMPLETED and done.attempts == 2
    kinds = [e["type"] for e in events if e["jobId"] == job.job_id]
    assert kinds == [
        "job_queued",
        "job_started",
        "job_progress",
        "job_retrying",
        "job_started",
        "job_progress",
        "job_completed",
    ]
    assert kinds.count("job_completed") == 1
    assert [line.split()[1] for line in marker_lines(marker)] == ["1", "2"]


async def test_sigterm_releases_a_running_job_to_another_worker_at_once(workers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    queue, procs = workers
    procs.env["SHUTDOWN_GRACE_SECONDS"] = "0.2"
    procs.env["LEASE_SECONDS"] = "60"  # a release must not wait for the lease
    gate = tmp_path / "gate"
    job = (await queue.enqueue("test_echo", {"gate": str(gate)}, user_id=USER)).job
    first = procs.start(concurrency=1)
    await wait_for_events(queue, USER, has_event(job.job_id, "job_started"))
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=10) == 0
    assert (await queue.get(job.job_id)).status is JobStatus.QUEUED
    gate.touch()
    started = time.monotonic()
    procs.start(concurrency=1)
    await wait_for_events(queue, USER, has_event(job.job_id, "job_completed"), timeout=20)
    assert time.monotonic() - started < 15, "taken at once, not after the 60 s lease"
