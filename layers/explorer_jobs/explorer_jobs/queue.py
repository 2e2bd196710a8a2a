"""The Redis job queue: what the HTTP functions and the worker share.

Every state change is one Lua script (`lua/`) that also appends the owner's event, so a crash
between two commands cannot leave a job half-moved, nor a change without its notification.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

from explorer_jobs.enqueueing import (
    BULK_CHUNK,
    EnqueueRequest,
    EnqueueResult,
    Precondition,
    RateLimit,
    check_refusal,
    created_job,
    encode_request,
    enqueue_args,
)
from explorer_jobs.errors import Conflict, InvalidInput, LeaseLost, NotFound
from explorer_jobs.keys import QueueKeys
from explorer_jobs.models import Job, JobStatus, QueueCounts
from explorer_jobs.redis_client import RedisClient
from explorer_jobs.script_batching import ScriptBatcher
from explorer_jobs.scripts import SCRIPT_NAMES, script_source
from explorer_jobs.settings import Settings, get_settings

MAX_PAGE_SIZE = 100
# A page answers after looking at this many of a user's jobs, with a cursor, so a rare filter
# cannot make one request walk a whole history.
LIST_SCAN_BUDGET = 2000


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job a worker now holds a lease on."""

    job_id: str
    job_type: str
    user_id: str
    data: str
    attempt: int
    max_attempts: int
    timeout: float
    backoff: float
    backoff_max: float
    token: str
    # Its stalls so far when it was claimed as a suspect (a job whose lease once ran out: it may
    # be what killed a worker), else 0. A worker holds at most one suspect at a time.
    stalls: int = 0

    @property
    def suspect(self) -> bool:
        return self.stalls > 0

    @classmethod
    def from_reply(cls, c: Sequence[Any]) -> ClaimedJob:
        timeout, backoff, backoff_max = c[6].split("|")
        return cls(
            c[0],
            c[1],
            c[2],
            c[3],
            int(c[4]),
            int(c[5]),
            float(timeout),
            float(backoff),
            float(backoff_max),
            c[7],
            int(c[8]),
        )


@dataclass(frozen=True, slots=True)
class Settlement:
    """How a worker's job ended, handed over with its next claim.

    outcome: 'c' completed (a = result JSON), 'f' failed (a = error, b = retry delay ms or -1),
    'x' cancelled at a checkpoint (a = message), 'r' released by a stopping worker.
    """

    job: ClaimedJob
    outcome: str
    a: str = ""
    b: str = ""

    @property
    def job_id(self) -> str:
        return self.job.job_id

    def as_args(self) -> list[str]:
        j = self.job
        return [
            j.job_id,
            j.token,
            j.user_id,
            j.job_type,
            str(j.attempt),
            str(j.max_attempts),
            self.outcome,
            self.a,
            self.b,
        ]


@dataclass(slots=True)
class ClaimResult:
    accepted: list[bool]
    jobs: list[ClaimedJob]
    next_due_ms: int


def _fields(flat: Sequence[str]) -> dict[str, str]:
    it = iter(flat)
    return dict(zip(it, it, strict=True))


class Queue:
    """One named queue on one Redis (or Redis Cluster, where it lives on one shard)."""

    def __init__(self, redis: RedisClient, settings: Settings | None = None, name: str | None = None) -> None:
        self.redis = redis
        self.settings = settings or get_settings()
        self.name = name or self.settings.QUEUE_NAME
        self.keys = QueueKeys.for_queue(self.settings.KEY_PREFIX, self.name)
        self._scripts: dict[str, AsyncScript] = {
            n: redis.register_script(script_source(n)) for n in SCRIPT_NAMES
        }
        self._maxlen = str(self.settings.EVENTS_MAXLEN)
        # Enqueues made at the same moment (an HTTP function's concurrent requests) share one
        # pipeline. Not on a cluster client, whose pipelines route each command on their own, nor on
        # RESP3, which the batcher does not read.
        self._enqueue_batcher = (
            ScriptBatcher(redis, self._scripts["enqueue"]) if ScriptBatcher.usable_with(redis) else None
        )
        # redis-py's asyncio cluster client breaks when many coroutines make its first calls at
        # once (its nodes are set up by each of them): set it up once, under a lock.
        self._ready = not isinstance(redis, RedisCluster)
        self._init_lock = asyncio.Lock()

    async def _ensure_ready(self) -> None:
        async with self._init_lock:
            if not self._ready:
                await self.redis.initialize()  # type: ignore[union-attr]
                self._ready = True

    async def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        if not self._ready:
            await self._ensure_ready()
        return await self._scripts[name](keys=keys, args=[self.keys.prefix, *args])

    # ------------------------------------------------------------------ producers

    async def enqueue(
        self,
        job_type: str,
        payload: dict[str, Any] | BaseModel,
        *,
        user_id: str,
        rate_limit: RateLimit | None = None,
        precondition: Precondition | None = None,
        **options: Any,
    ) -> EnqueueResult:
        """Queue one job (one round trip). Raises IdempotencyConflict when the key was used for
        another request, InvalidInput for a bad payload or option, UnknownJobType, and
        RateLimited when `rate_limit`'s window is spent, PreconditionFailed when `precondition`
        does not hold."""
        request = EnqueueRequest(job_type, payload, user_id, **options)
        return (await self.enqueue_many([request], rate_limit, precondition))[0]

    async def enqueue_many(
        self,
        requests: Sequence[EnqueueRequest],
        rate_limit: RateLimit | None = None,
        precondition: Precondition | None = None,
    ) -> list[EnqueueResult]:
        """Queue many jobs, a script call per thousand; each job gets its own event.
        A `rate_limit` counts one per script call; a `precondition` is checked by each."""
        results: list[EnqueueResult] = []
        for start in range(0, len(requests), BULK_CHUNK):
            encoded = [encode_request(r) for r in requests[start : start + BULK_CHUNK]]
            args = enqueue_args(self.settings, encoded, rate_limit, precondition)
            if self._enqueue_batcher is None:
                replies = await self._run("enqueue", [self.keys.queued], args)
            else:
                replies = await self._enqueue_batcher([self.keys.queued], [self.keys.prefix, *args])
            check_refusal(replies, rate_limit)
            for job, reply in zip(encoded, replies, strict=True):
                created = created_job(job, reply)
                results.append(
                    EnqueueResult(created, True)
                    if created
                    else EnqueueResult(await self.get(reply[0]), False)
                )
        return results

    # ------------------------------------------------------------------ reading

    async def get(self, job_id: str, *, user_id: str | None = None, job_type: str | None = None) -> Job:
        """A job; NotFound when unknown, someone else's (when `user_id` is given) or of another type."""
        if not self._ready:
            await self._ensure_ready()
        fields: dict[str, str] = await self.redis.hgetall(self.keys.job(job_id))  # type: ignore[misc,assignment]
        if not fields or (user_id is not None and fields["user"] != user_id):
            raise NotFound("job not found")
        if job_type is not None and fields["type"] != job_type:
            raise NotFound("job not found")
        return Job.from_redis(fields)

    async def list_jobs(
        self,
        user_id: str,
        *,
        status: JobStatus | None = None,
        job_type: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> JobPage:
        """A user's jobs, newest first. `cursor` is the opaque `next_cursor` of the previous page."""
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE_SIZE}")
        start = "+inf"
        if cursor:
            if not cursor.isdigit():
                raise InvalidInput("invalid cursor")
            start = cursor
        reply = await self._run(
            "list",
            [self.keys.user_jobs(user_id)],
            [start, str(limit), status.value if status else "", job_type or "", str(LIST_SCAN_BUDGET)],
        )
        jobs = [Job.from_redis(_fields(flat)) for flat in reply[1:]]
        return JobPage(jobs=jobs, next_cursor=reply[0] or None)

    async def counts(self, user_id: str | None = None) -> list[QueueCounts]:
        """Jobs per type and status: one user's, or every user's when `user_id` is None."""
        key = self.keys.counts if user_id is None else self.keys.user_counts(user_id)
        if not self._ready:
            await self._ensure_ready()
        raw: dict[str, str] = await self.redis.hgetall(key)  # type: ignore[misc,assignment]
        per_type: dict[str, dict[str, int]] = {}
        for name, value in raw.items():
            job_type, _, status = name.rpartition("|")
            counts = per_type.setdefault(job_type, {s.value: 0 for s in JobStatus})
            counts[status] = max(0, int(value))
        return [QueueCounts(job_type=t, counts=c) for t, c in sorted(per_type.items())]

    # ------------------------------------------------------------------ users' actions

    async def cancel(self, job_id: str, *, user_id: str | None = None, message: str = "cancelled") -> Job:
        """Cancel a queued or delayed job at once; flag an active one for its next checkpoint.
        NotFound for an unknown or someone else's job, Conflict for a finished one."""
        code, flat = await self._run(
            "cancel", [self.keys.job(job_id)], [self._maxlen, job_id, user_id or "", message]
        )
        if code == "notfound":
            raise NotFound("job not found")
        if code == "conflict":
            raise Conflict("the job has already finished")
        return Job.from_redis(_fields(flat))

    async def retry(self, job_id: str, *, user_id: str | None = None) -> Job:
        """Queue a failed or cancelled job again under the same id (attempts count on)."""
        code, flat = await self._run("retry", [self.keys.job(job_id)], [self._maxlen, job_id, user_id or ""])
        if code == "notfound":
            raise NotFound("job not found")
        if code == "conflict":
            raise Conflict("only a failed or cancelled job can be retried")
        return Job.from_redis(_fields(flat))

    async def cancel_matching(self, user_id: str, job_type: str, data_field: str, value: Any) -> list[str]:
        """Cancel a user's unfinished jobs of a type whose payload has `data_field == value`
        (deleting a connection cancels its trainings). Returns the ids it cancelled or flagged."""
        done: list[str] = []
        for status in (JobStatus.QUEUED, JobStatus.DELAYED, JobStatus.ACTIVE):
            cursor: str | None = None
            while True:
                page = await self.list_jobs(
                    user_id, status=status, job_type=job_type, limit=100, cursor=cursor
                )
                for job in page.jobs:
                    if job.data.get(data_field) == value:
                        try:
                            await self.cancel(job.job_id, user_id=user_id)
                            done.append(job.job_id)
                        except (Conflict, NotFound):
                            pass  # it finished meanwhile
                cursor = page.next_cursor
                if cursor is None:
                    break
        return done

    # ------------------------------------------------------------------ workers

    async def claim(
        self,
        worker_id: str,
        max_jobs: int,
        settlements: Sequence[Settlement] = (),
        lease_ms: int | None = None,
        *,
        holds_suspect: bool = False,
        claim_id: str | None = None,
    ) -> ClaimResult:
        """Settle finished jobs and claim up to `max_jobs` due ones, in one script call.

        `holds_suspect`: the worker still holds a suspect (`ClaimedJob.suspect`) that these
        settlements do not settle; it then gets none, else at most one, in its place by priority.
        `claim_id` names the call (a new one per call, without '|'; one is made when None): the
        same call sent again, as the client does when a dropped connection lost its reply, gets
        the first reply again instead of running twice."""
        if claim_id is None:
            claim_id = uuid.uuid4().hex
        elif not claim_id or "|" in claim_id:
            raise InvalidInput("a claim id is not empty and holds no '|'")
        lease = lease_ms if lease_ms is not None else int(self.settings.LEASE_SECONDS * 1000)
        args: list[str] = [
            self._maxlen,
            worker_id,
            str(lease),
            str(max_jobs),
            str(self.settings.MAX_STALLS),
            json.dumps([s.as_args() for s in settlements], separators=(",", ":")),
            "1" if holds_suspect else "0",
            claim_id,
        ]
        accepted, claimed, next_due = await self._run("claim", [self.keys.queued], args)
        jobs = [ClaimedJob.from_reply(c) for c in claimed]
        return ClaimResult([a == 1 for a in accepted], jobs, int(next_due))

    async def renew(self, leases: Sequence[tuple[str, str]], lease_ms: int | None = None) -> list[int]:
        """Extend leases; per job 1 = cancel requested, 0 = carry on, -1 = lease lost."""
        if not leases:
            return []
        lease = lease_ms if lease_ms is not None else int(self.settings.LEASE_SECONDS * 1000)
        args: list[str] = [str(lease)]
        for job_id, token in leases:
            args.extend((job_id, token))
        return [int(x) for x in await self._run("renew", [self.keys.active], args)]

    async def progress(self, job_id: str, token: str, percent: int, message: str | None = None) -> bool:
        """Record progress; returns whether cancellation was requested. LeaseLost if not the owner."""
        reply = int(
            await self._run(
                "progress",
                [self.keys.job(job_id)],
                [self._maxlen, job_id, token, str(percent), message or ""],
            )
        )
        if reply < 0:
            raise LeaseLost(f"job {job_id} is no longer owned by this worker")
        return reply == 1

    async def cancel_requested(self, job_id: str, token: str) -> bool:
        """Whether the job's cancellation was requested. LeaseLost if the token no longer owns it."""
        if not self._ready:
            await self._ensure_ready()
        owner, cancel = await self.redis.hmget(self.keys.job(job_id), ["token", "cancel"])  # type: ignore[misc]
        if owner != token:
            raise LeaseLost(f"job {job_id} is no longer owned by this worker")
        return cancel == "1"

    async def maintain(self, sweep_limit: int = 500) -> tuple[int, int, list[Job]]:
        """Promote due jobs and recover stalled leases; returns (promoted, recovered, finished jobs
        past the retention). Archive those, then `forget()` them."""
        reply = await self._run(
            "maintain",
            [self.keys.finished],
            [
                self._maxlen,
                str(self.settings.MAX_STALLS),
                str(self.settings.JOB_RETENTION_SECONDS * 1000),
                str(sweep_limit),
            ],
        )
        expired = [Job.from_redis(_fields(flat)) for flat in reply[2:]]
        return int(reply[0]), int(reply[1]), expired

    async def forget(self, job_ids: Sequence[str]) -> int:
        """Delete finished jobs past the retention (their counters and index entries with them)."""
        if not job_ids:
            return 0
        return int(
            await self._run(
                "forget", [self.keys.finished], [str(self.settings.JOB_RETENTION_SECONDS * 1000), *job_ids]
            )
        )

    async def wait_for_work(self, timeout: float, *, suspects: bool = True) -> bool:
        """Block (long-poll) until a producer signals work or `timeout` seconds pass. `suspects`:
        waiting suspects wake it too (pass False while the worker holds one: it may not take them)."""
        # BLPOP takes whole or fractional seconds; 0 would block forever.
        if not self._ready:
            await self._ensure_ready()
        keys = [self.keys.wake, self.keys.suspect_wake] if suspects else [self.keys.wake]
        # redis-py 8 (asyncio) swallows a cancellation that arrives just after the command starts
        # and waits out the BLPOP (seen: a stopping worker took 4 x 5 s). Waiting through a
        # shield makes cancelling the wait immediate; the BLPOP itself is cancelled too and, at
        # worst, ends by its own timeout. A marker it pops meanwhile is put back by the next
        # claim or maintenance call (pass_wake).
        blpop = asyncio.ensure_future(self.redis.blpop(keys, timeout=max(0.01, timeout)))  # type: ignore[arg-type]
        try:
            return await asyncio.shield(blpop) is not None
        except asyncio.CancelledError:
            blpop.cancel()
            raise

    async def ping(self) -> bool:
        if not self._ready:
            await self._ensure_ready()
        return bool(await self.redis.ping())  # type: ignore[misc]
