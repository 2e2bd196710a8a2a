"""A worker frozen (SIGSTOP) past its lease, then thawed (SIGCONT) after another worker finished
its job: its late completion is refused, and the job is completed once, by the new owner."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from explorer_jobs.models import JobStatus
from explorer_jobs.queue import Queue
from tests.support.events import has_event, types_of, wait_for_events

from .support import WAIT, Workers, executions, wait_for_line

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

USER = "frozen"
LEASE = 1.0
# The processor holds this long right after writing its marker line, with no Redis call. The
# freeze lands inside the hold (the test stops the worker as soon as the line appears), so on
# SIGCONT the hold's timer is overdue and the job returns its result at once: the stale outcome
# reaches Redis as a settlement, which the token check must refuse (rather than the worker first
# noticing the lost lease at a progress call, a checkpoint or its renewal, and dropping the job).
HOLD_SECONDS = 0.5


async def test_a_worker_thawed_after_its_lease_cannot_complete_the_new_owners_job(
    chaos_queue: Queue, workers: Workers, tmp_path: Path
) -> None:
    queue = chaos_queue
    workers.env |= {"LEASE_SECONDS": str(LEASE), "SHUTDOWN_GRACE_SECONDS": "5"}
    marker = tmp_path / "runs.txt"
    payload = {"value": 1, "marker": str(marker), "hold_seconds": HOLD_SECONDS}
    job_id = (await queue.enqueue("test_echo", payload, user_id=USER)).job.job_id

    stale = workers.start(concurrency=1)
    wait_for_line(marker, f"{job_id} 1", timeout=WAIT)
    stale.proc.send_signal(signal.SIGSTOP)
    try:
        fresh = workers.start(concurrency=1)
        # The lease runs out, the new worker recovers the job, runs it again and completes it.
        await wait_for_events(queue, USER, has_event(job_id, "job_completed"), timeout=WAIT)
    finally:
        stale.proc.send_signal(signal.SIGCONT)
    # Its SIGTERM drain hands over whatever outcome it still holds: once it has exited, its late
    # completion has been offered to Redis.
    stale.proc.send_signal(signal.SIGTERM)
    assert stale.proc.wait(timeout=WAIT) == 0

    job = await queue.get(job_id)
    assert job.status is JobStatus.COMPLETED
    assert job.attempts == 2
    assert job.result == {"echo": 1, "attempt": 2}, "the new owner's result stands"
    assert [line.split()[1] for line in marker.read_text().splitlines()] == ["1", "2"]
    assert executions(marker)[job_id] == 2
    events = await wait_for_events(queue, USER, lambda _e: True, timeout=WAIT)
    assert types_of(events, job_id) == [
        "job_queued",
        "job_started",
        "job_retrying",  # the lease ran out under the frozen worker
        "job_started",
        "job_completed",  # once: the stale completion wrote nothing and announced nothing
    ]
    assert "outcome refused" in stale.log_text(), stale.log_text()
    assert "outcome refused" not in fresh.log_text()
    [counts] = await queue.counts(USER)
    assert counts.counts["completed"] == 1 and counts.counts["active"] == 0
