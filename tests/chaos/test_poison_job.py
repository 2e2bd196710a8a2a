"""A poison job (its processor kills its own worker process) fails after MAX_STALLS + 1 leases
with the stall error, while other jobs keep completing. Workers run several jobs at once: the jobs
the poison takes down with it stall once, then run as suspects (a worker holds at most one, so
never beside the poison again) and complete."""

from __future__ import annotations

import itertools
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
CONCURRENCY = 5
ECHO_JOBS = 200
ECHO_SECONDS = 0.25  # 200 x 0.25 s on two workers' slots outlasts the poison's 4 leases


async def test_a_poison_job_fails_after_max_stalls_and_other_jobs_keep_flowing(
    chaos_queue: Queue, workers: Workers, tmp_path: Path
) -> None:
    queue = chaos_queue
    workers.env |= {"LEASE_SECONDS": str(LEASE), "MAX_STALLS": str(MAX_STALLS)}
    marker = tmp_path / "runs.txt"
    poison_id = (
        await queue.enqueue("test_poison", {"marker": str(marker)}, user_id=USER, priority=1)
    ).job.job_id
    echo = {"steps": 1, "step_seconds": ECHO_SECONDS}
    reqs = [EnqueueRequest("test_echo", echo | {"value": i}, USER, priority=5) for i in range(ECHO_JOBS)]
    echo_ids = {r.job.job_id for r in await queue.enqueue_many(reqs)}

    slots = [workers.start(concurrency=CONCURRENCY) for _ in range(2)]
    restarts = 0
    deadline = time.monotonic() + WAIT + ECHO_JOBS * ECHO_SECONDS
    done = echo_ids | {poison_id}
    while True:
        # A supervisor: a worker the poison killed is started again, as ECS would.
        for i, w in enumerate(slots):
            if w.proc.poll() is not None:
                slots[i] = workers.start(concurrency=CONCURRENCY)
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
    # Other jobs kept flowing while the poison was killing workers: some completed between each of
    # its runs and the next, and all completed.
    starts = [events.index(e) for e in poison if e["type"] == "job_started"] + [events.index(poison[-1])]
    between = [sum(e["type"] == "job_completed" for e in events[a:b]) for a, b in itertools.pairwise(starts)]
    assert all(between), f"jobs completed between the poison's runs: {between}"
    completed = {e["jobId"] for e in events if e["type"] == "job_completed"}
    assert completed == echo_ids
    [counts] = [c for c in await queue.counts(USER) if c.job_type == "test_echo"]
    assert counts.counts["completed"] == ECHO_JOBS and counts.counts["active"] == 0
    # The jobs the poison took down with it stalled once (as fresh jobs beside it), never twice: as
    # suspects they ran on workers holding no other suspect, so never beside the poison again.
    pipe = queue.redis.pipeline(transaction=False)
    for job_id in echo_ids:
        pipe.hget(queue.keys.job(job_id), "stalls")
    stalls = [int(s or 0) for s in await pipe.execute()]
    neighbours = sum(s > 0 for s in stalls)
    assert max(stalls) <= 1, f"an innocent job stalled {max(stalls)} times"
    assert neighbours >= 1, "the poison never took a neighbour down: the test proves nothing"
    assert f"{poison_id} (test_poison) is a suspect" in workers.logs()
    print(
        f"\npoison: failed after {job.attempts} leases, {restarts} restarts; {neighbours} neighbours "
        f"stalled (max {max(stalls)} stall each); completed between its runs: {between}"
    )
