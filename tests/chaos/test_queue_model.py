"""A Hypothesis state machine over the Queue API on the real Redis (DB 10; each example's queue
is deleted after it): random enqueues, claims, settlements (complete, retryable and permanent
failure, cancelled at a checkpoint, released), cancels, lease expiries, retries and progress with
live and stale tokens, checked after every step against a model: each job in exactly one live set
matching its status (a queued job that ever stalled in `suspect`), each claim the most urgent jobs
with at most one suspect, none for a worker holding one, the suspects' wake baton there exactly while
suspects wait, attempts (never decreasing) and stalls as the model counts them, the counts hashes equal
to the tallies, and each job's events exactly the transitions that succeeded (nothing for a
refused change).

CHAOS_EXAMPLES x CHAOS_STEPS (short form 100 x 30)."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from explorer_jobs.errors import Conflict, LeaseLost
from explorer_jobs.models import JobStatus
from explorer_jobs.queue import ClaimedJob, Queue, Settlement
from explorer_jobs.redis_client import create_redis
from tests.conftest import queue_settings
from tests.support.redis_urls import redis_test_url

from .support import scale

pytestmark = [pytest.mark.chaos]

MODEL_REDIS_URL = os.environ.get("CHAOS_MODEL_REDIS_URL", redis_test_url(10))
USER = "model"
JOB_TYPE = "test_echo"  # max_attempts 3 (tests/support/jobs.py)
ROUND = 3
MAX_STALLS = 2
LONG_MS = 3_600_000  # delays and leases that cannot run out during an example
FINISHED = {"completed", "failed", "cancelled"}
SET_OF = {"queued": "queued", "delayed": "delayed", "active": "active"} | {s: "finished" for s in FINISHED}
SETS = ("queued", "suspect", "delayed", "active", "finished")


@dataclass
class ModelJob:
    seq: int
    priority: int
    status: str
    attempts: int = 0
    max_attempts: int = ROUND
    stalls: int = 0
    cancel: bool = False
    claim: ClaimedJob | None = None  # the live lease, when active
    worker: str = ""  # who holds that lease
    events: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        """The set it must be in: a queued job whose lease ever ran out waits in `suspect`."""
        return "suspect" if self.status == "queued" and self.stalls else SET_OF[self.status]


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # One loop per example, driven step by step: Hypothesis calls rules synchronously.
        self.loop = asyncio.new_event_loop()
        self.client = create_redis(MODEL_REDIS_URL, cluster=False)
        # A queue name of the example's own (queue_settings draws one): every key it writes starts
        # with its prefix, and only those are deleted. Not FLUSHDB: DB 10 of the shared server may
        # be in use by another run of this suite at the same time.
        self.queue = Queue(self.client, queue_settings(MODEL_REDIS_URL, MAX_STALLS=MAX_STALLS))
        self.jobs: dict[str, ModelJob] = {}
        self.stale: list[tuple[str, str]] = []  # (job id, token) pairs that lost their lease
        self.last_attempts: dict[str, int] = {}
        self.events: dict[str, list[str]] = {}
        self.last_event = "0-0"

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def forget_queue(self) -> None:
        keys = [k async for k in self.client.scan_iter(match=f"{self.queue.keys.prefix}*", count=1000)]
        if keys:
            await self.client.delete(*keys)

    def teardown(self) -> None:
        self.run(self.forget_queue())
        self.run(self.client.aclose())
        self.loop.close()

    # -- helpers ----------------------------------------------------------------------------------

    def with_status(self, *statuses: str) -> list[str]:
        return [j for j, m in self.jobs.items() if m.status in statuses]

    def pick(self, n: int, *statuses: str) -> str:
        ids = self.with_status(*statuses)
        return ids[n % len(ids)]

    def lose_lease(self, job_id: str) -> None:
        m = self.jobs[job_id]
        if m.claim is not None:
            self.stale.append((job_id, m.claim.token))
            m.claim, m.worker = None, ""

    def finish(self, job_id: str, status: str, event: str) -> None:
        self.lose_lease(job_id)
        self.jobs[job_id].status = status
        self.jobs[job_id].events.append(event)

    def back_to_queue(self, job_id: str, event: str) -> None:
        """common.lua back_to_queue: a flagged job ends cancelled, any other is queued again."""
        if self.jobs[job_id].cancel:
            self.finish(job_id, "cancelled", "job_cancelled")
        else:
            self.finish(job_id, "queued", event)

    def holds_suspect(self, worker: str) -> bool:
        return any(m.claim is not None and m.claim.suspect and m.worker == worker for m in self.jobs.values())

    def take(self, worker: str, n: int, lease_ms: int) -> list[ClaimedJob]:
        """Claim and check the claim took the most urgent queued jobs, FIFO within a priority, with
        the most urgent suspect among them in its place when the worker holds no suspect."""

        def urgency(job_id: str) -> tuple[int, int]:
            return self.jobs[job_id].priority, self.jobs[job_id].seq

        fresh = [j for j, m in self.jobs.items() if m.where == "queued"]
        suspects = sorted((j for j, m in self.jobs.items() if m.where == "suspect"), key=urgency)
        holds = self.holds_suspect(worker)
        expected = sorted(fresh + ([] if holds else suspects[:1]), key=urgency)[:n]
        result = self.run(self.queue.claim(worker, n, lease_ms=lease_ms, holds_suspect=holds))
        assert [c.job_id for c in result.jobs] == expected
        for c in result.jobs:
            m = self.jobs[c.job_id]
            assert c.suspect == (m.where == "suspect") and c.stalls == (m.stalls if c.suspect else 0)
            m.status, m.attempts, m.claim, m.worker = "active", m.attempts + 1, c, worker
            assert c.attempt == m.attempts and c.max_attempts == m.max_attempts
            m.events.append("job_started")
        return list(result.jobs)

    def settle(self, job_id: str, outcome: str, a: str = "", b: str = "") -> bool:
        claim = self.jobs[job_id].claim
        assert claim is not None
        result = self.run(self.queue.claim("settler", 0, [Settlement(claim, outcome, a, b)]))
        return bool(result.accepted[0])

    def pick_in(self, n: int, which: str) -> str:
        """A job in the `which` set if there is one (so every kind of job is drawn often), else any."""
        ids = [j for j, m in self.jobs.items() if m.where == which] or list(self.jobs)
        return ids[n % len(ids)]

    # -- rules ------------------------------------------------------------------------------------

    @initialize(jobs=st.integers(2, 6), claimed=st.integers(0, 3))
    def some_jobs_some_claimed(self, jobs: int, claimed: int) -> None:
        # Most rules need jobs in some state: start with a few, so steps are spent on transitions.
        for i in range(jobs):
            self.enqueue(priority=1 + i % 3, delayed=False)
        self.take("w0", claimed, LONG_MS)

    @rule(priority=st.integers(1, 3), delayed=st.booleans())
    def enqueue(self, priority: int, delayed: bool) -> None:
        options: dict[str, Any] = {"priority": priority, "delay": LONG_MS / 1000 if delayed else None}
        job = self.run(self.queue.enqueue(JOB_TYPE, {"value": len(self.jobs)}, user_id=USER, **options)).job
        status = "delayed" if delayed else "queued"
        assert job.status.value == status
        self.jobs[job.job_id] = ModelJob(len(self.jobs), priority, status, events=["job_queued"])

    @rule(worker=st.sampled_from(["w1", "w2"]), n=st.integers(0, 3))
    def claim(self, worker: str, n: int) -> None:
        self.take(worker, n, LONG_MS)

    @precondition(lambda self: self.with_status("active"))
    @rule(n=st.integers(0, 1000))
    def complete(self, n: int) -> None:
        job_id = self.pick(n, "active")
        assert self.settle(job_id, "c", json.dumps({"n": n}))
        self.finish(job_id, "completed", "job_completed")

    @precondition(lambda self: self.with_status("active"))
    @rule(n=st.integers(0, 1000), permanent=st.booleans())
    def fail(self, n: int, permanent: bool) -> None:
        job_id = self.pick(n, "active")
        m = self.jobs[job_id]
        assert self.settle(job_id, "f", "boom", "-1" if permanent else str(LONG_MS))
        if permanent or m.attempts >= m.max_attempts:
            self.finish(job_id, "failed", "job_failed")
        elif m.cancel:  # cancelled while it ran: not retried
            self.finish(job_id, "cancelled", "job_cancelled")
        else:
            self.finish(job_id, "delayed", "job_retrying")

    @precondition(lambda self: self.with_status("active"))
    @rule(n=st.integers(0, 1000), release=st.booleans())
    def stop_at_checkpoint_or_release(self, n: int, release: bool) -> None:
        job_id = self.pick(n, "active")
        if release:  # a stopping worker hands the job back
            assert self.settle(job_id, "r")
            self.back_to_queue(job_id, "job_queued")
        else:
            assert self.settle(job_id, "x", "cancelled at a checkpoint")
            self.finish(job_id, "cancelled", "job_cancelled")

    @precondition(lambda self: self.stale)
    @rule(n=st.integers(0, 1000), outcome=st.sampled_from(["c", "f", "x", "r"]))
    def settle_with_a_stale_token(self, n: int, outcome: str) -> None:
        job_id, token = self.stale[n % len(self.stale)]
        m = self.jobs[job_id]
        stale = ClaimedJob(job_id, JOB_TYPE, USER, "{}", 1, m.max_attempts, 30, 1, 1, token)
        result = self.run(self.queue.claim("stale", 0, [Settlement(stale, outcome, "null", "-1")]))
        assert result.accepted == [False]

    @precondition(lambda self: self.jobs)
    @rule(n=st.integers(0, 1000), which=st.sampled_from(SETS))
    def cancel(self, n: int, which: str) -> None:
        job_id = self.pick_in(n, which)
        m = self.jobs[job_id]
        try:
            job = self.run(self.queue.cancel(job_id, user_id=USER))
        except Conflict:
            assert m.status in FINISHED
            return
        assert m.status not in FINISHED
        if m.status == "active":
            m.cancel = True  # flagged: it stops at its next checkpoint
            assert job.status is JobStatus.ACTIVE
        else:
            self.finish(job_id, "cancelled", "job_cancelled")

    @precondition(lambda self: self.with_status("queued"))
    @rule()
    def expire_a_lease(self) -> None:
        """Claim with a 1 ms lease, let it run out, then maintain: the worker "died"."""
        [claimed] = self.take("doomed", 1, 1)
        self.run(asyncio.sleep(0.003))  # past the 1 ms deadline on Redis's clock
        _, recovered, _ = self.run(self.queue.maintain())
        assert recovered == 1
        m = self.jobs[claimed.job_id]
        m.stalls += 1
        if m.stalls > MAX_STALLS:
            self.finish(claimed.job_id, "failed", "job_failed")
        else:
            self.back_to_queue(claimed.job_id, "job_retrying")

    @precondition(lambda self: self.jobs)
    @rule(n=st.integers(0, 1000), which=st.sampled_from(["queued", "suspect", "active", "finished"]))
    def retry(self, n: int, which: str) -> None:
        job_id = self.pick_in(n, which)
        m = self.jobs[job_id]
        try:
            self.run(self.queue.retry(job_id, user_id=USER))
        except Conflict:
            assert m.status not in ("failed", "cancelled")
            return
        assert m.status in ("failed", "cancelled")
        m.max_attempts, m.stalls, m.cancel = m.attempts + ROUND, 0, False
        self.finish(job_id, "queued", "job_queued")

    @precondition(lambda self: self.with_status("active"))
    @rule(n=st.integers(0, 1000), percent=st.integers(0, 100))
    def progress(self, n: int, percent: int) -> None:
        job_id = self.pick(n, "active")
        claim = self.jobs[job_id].claim
        assert claim is not None
        assert self.run(self.queue.progress(job_id, claim.token, percent)) == self.jobs[job_id].cancel
        self.jobs[job_id].events.append("job_progress")

    @precondition(lambda self: self.stale)
    @rule(n=st.integers(0, 1000))
    def progress_with_a_stale_token(self, n: int) -> None:
        job_id, token = self.stale[n % len(self.stale)]
        with pytest.raises(LeaseLost):
            self.run(self.queue.progress(job_id, token, 50))

    # -- invariants -------------------------------------------------------------------------------

    @invariant()
    def every_job_is_where_its_status_says(self) -> None:
        async def read() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for job_id in self.jobs:
                pipe.hmget(self.queue.keys.job(job_id), ["status", "attempts", "stalls"])
                for name in SETS:
                    pipe.zscore(getattr(self.queue.keys, name), job_id)
            return list(await pipe.execute())

        replies = self.run(read())
        width = 1 + len(SETS)
        for i, (job_id, m) in enumerate(self.jobs.items()):
            (status, attempts, stalls), *scores = replies[width * i : width * (i + 1)]
            assert status == m.status, (job_id, status, m)
            inside = [n for n, s in zip(SETS, scores, strict=True) if s]
            assert inside == [m.where], (job_id, m.status, m.stalls, inside)
            assert int(attempts or 0) == m.attempts >= self.last_attempts.get(job_id, 0)
            assert int(stalls or 0) == m.stalls, (job_id, stalls, m.stalls)
            self.last_attempts[job_id] = m.attempts

    @invariant()
    def a_worker_holds_at_most_one_suspect(self) -> None:
        held = [m.worker for m in self.jobs.values() if m.claim is not None and m.claim.suspect]
        assert len(held) == len(set(held)), held

    @invariant()
    def waiting_suspects_keep_their_own_wake_baton(self) -> None:
        # Every step that moves a job into or out of `suspect` hands the batons on (pass_wake), and
        # nothing in the model pops them: a marker exactly while suspects wait.
        waiting = self.run(self.client.zcard(self.queue.keys.suspect))
        assert waiting == sum(m.where == "suspect" for m in self.jobs.values())
        assert self.run(self.client.llen(self.queue.keys.suspect_wake)) == (1 if waiting else 0)

    @invariant()
    def counts_equal_the_tallies(self) -> None:
        tally: dict[str, int] = {}
        for m in self.jobs.values():
            tally[m.status] = tally.get(m.status, 0) + 1
        for key in (self.queue.keys.counts, self.queue.keys.user_counts(USER)):
            raw = self.run(self.client.hgetall(key))
            counts = {f.rpartition("|")[2]: int(v) for f, v in raw.items() if int(v)}
            assert counts == tally, (key, counts, tally)

    @invariant()
    def events_are_the_transitions_that_happened(self) -> None:
        entries = self.run(self.client.xrange(self.queue.keys.events(USER), min=f"({self.last_event}"))
        for entry_id, fields in entries:
            event = json.loads(fields["d"])
            self.events.setdefault(event["jobId"], []).append(event["type"])
            self.last_event = entry_id
        for job_id, m in self.jobs.items():
            assert self.events.get(job_id, []) == m.events, (job_id, self.events.get(job_id), m.events)


QueueMachine.TestCase.settings = settings(
    max_examples=scale("EXAMPLES"),
    stateful_step_count=scale("STEPS"),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestQueueModel = QueueMachine.TestCase
