"""A poison job (its processor kills its own worker process) fails after MAX_STALLS + 1 leases
with the stall error, while the other worker keeps completing other jobs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from explorer_jobs.models import JobStatus
from explorer_jobs.queue import EnqueueRequest, Queue

from .support import WAIT, Workers, all_events, await_stream, executions

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

USER = "poisoned"
LEASE = 1.0
MAX_STALLS = 3
ECHO_JOBS = 60
ECHO_SECONDS = 0.2  # 60 x 0.2 s on one slot outlasts the poison's 4 leases


async def test_a_poison_job_fails_after_max_stalls_and_other_jobs_keep_flowing(
    chaos_queue: Queue, workers: Workers, tmp_path: Path
) -> None:
    queue = chaos_queue
    # Concurrency 1: a worker killed by the poison holds nothing else, so no other job's stall
    # budget is spent by it (with more slots its neighbours would be requeued with it each time).
    workers.env |= {"LEASE_SECONDS": str(LEASE), "MAX_STALLS": str(MAX_STALLS)}
    marker = tmp_path / "runs.txt"
    poison_id = (
        await queue.enqueue("test_poison", {"marker": str(marker)}, user_id=USER, priority=1)
    ).job.job_id
    echo = {"steps": 1, "step_seconds": ECHO_SECONDS}
    reqs = [EnqueueRequest("test_echo", echo | {"value": i}, USER, priority=5) for i in range(ECHO_JOBS)]
    echo_ids = {r.job.job_id for r in await queue.enqueue_many(reqs)}

    slots = [workers.start(concurrency=1) for _ in range(2)]
    restarts = 0
    deadline = time.monotonic() + WAIT + ECHO_JOBS * ECHO_SECONDS
    done = echo_ids | {poison_id}
    while True:
        # A supervisor: a worker the poison killed is started again, as ECS would.
        for i, w in enumerate(slots):
            if w.proc.poll() is not None:
                slots[i] = workers.start(concurrency=1)
                restarts += 1
        events = await all_events(queue, USER)
        finished = {e["jobId"] for e in events if e["type"] in ("job_completed", "job_failed")}
        if finished >= done:
            break
        assert time.monotonic() < deadline, f"unfinished: {len(done - finished)}"
        await await_stream(queue, USER, events[-1]["_id"] if events else "0-0", timeout=0.2)

    job = await queue.get(poison_id)
    assert job.status is JobStatus.FAILED
    assert job.error == f"job stalled {MAX_STALLS + 1} times: its worker stopped renewing the lease"
    assert job.attempts == MAX_STALLS + 1
    assert executions(marker)[poison_id] == MAX_STALLS + 1, "one run per lease, then no more"
    assert restarts >= MAX_STALLS + 1
    events = await all_events(queue, USER)
    poison = [e for e in events if e["jobId"] == poison_id]
    assert [e["type"] for e in poison] == ["job_queued"] + ["job_started", "job_retrying"] * MAX_STALLS + [
        "job_started",
        "job_failed",
    ]
    # Other jobs kept flowing while the poison was killing workers, and all completed.
    first, last = events.index(poison[1]), events.index(poison[-1])
    flowed = [e for e in events[first:last] if e["type"] == "job_completed"]
    assert flowed, "no job completed while the poison job was being retried"
    completed = {e["jobId"] for e in events if e["type"] == "job_completed"}
    assert completed == echo_ids
    [counts] = [c for c in await queue.counts(USER) if c.job_type == "test_echo"]
    assert counts.counts["completed"] == ECHO_JOBS and counts.counts["active"] == 0
    print(f"\npoison: failed after {job.attempts} leases, {restarts} restarts, {len(flowed)} jobs meanwhile")
