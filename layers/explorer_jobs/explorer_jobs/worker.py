"""The worker: runs up to `concurrency` jobs at once from one queue.

Round trips are the cost, so a worker batches: a claim takes as many due jobs as it has free
slots (several batches ahead for short jobs), and hands over the outcomes of the jobs that
finished since the last claim in the same script call. An idle worker long-polls (BLPOP on the
queue's wake list) instead of sleeping.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import inspect
import itertools
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError

from explorer_jobs.context import JobContext
from explorer_jobs.errors import JobCancelled, LeaseLost, PermanentJobError, UnknownJobType
from explorer_jobs.jobtypes import get_job_type
from explorer_jobs.models import Job
from explorer_jobs.observability import JobMetrics, current_job_id
from explorer_jobs.processors import Processor, find_processor
from explorer_jobs.queue import ClaimedJob, Queue, Settlement

log = logging.getLogger("explorer_jobs.worker")

# An idle worker wakes at least this often to promote delayed jobs and recover stalled leases.
MAX_IDLE_WAIT = 5.0
MAINTAIN_INTERVAL = 5.0
# While jobs take less than this on average, a worker claims ahead of its free slots, so its next
# claim is in flight while the current batch runs. Longer jobs are never claimed ahead: a claimed
# job shows as started, and must not wait for a slot.
PREFETCH_BELOW_SECONDS = 0.005
# For such jobs a worker holds up to this many batches (running and claimed ahead together), and
# the next claim waits until less than a batch is left ahead: fewer, larger script calls.
PREFETCH_BATCHES = 8
OUTCOMES = {"c": "completed", "f": "failed", "x": "cancelled"}


def backoff_delay(attempt: int, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Seconds before retry `attempt + 1`: exponential, capped, with "equal jitter" (half fixed,
    half random) so a burst of failures does not come back as a burst."""
    delay = min(cap, base * 2.0 ** max(0, attempt - 1))
    return float(delay / 2 + rng() * delay / 2)


def archive_in_store(jobs: list[Job]) -> None:
    # Imported here: SQLAlchemy is only needed once jobs expire, not to run them.
    from explorer_jobs.store.job_history import archive_jobs

    archive_jobs(jobs)


def encode_result(result: Any) -> str:
    if result is None:
        return "null"
    if isinstance(result, BaseModel):
        return result.model_dump_json(by_alias=True)
    return json.dumps(result, separators=(",", ":"), default=str)


@dataclass(slots=True)
class Running:
    job: ClaimedJob
    ctx: JobContext
    task: asyncio.Task[None]
    timer: asyncio.TimerHandle | None = None
    timed_out: bool = False


class Worker:
    """Claims and runs jobs until `stop()`; then drains within the grace period and releases the rest."""

    def __init__(
        self,
        queue: Queue,
        *,
        concurrency: int | None = None,
        processors: dict[str, Processor] | None = None,
        lease_seconds: float | None = None,
        grace_seconds: float | None = None,
        worker_id: str | None = None,
        archive: Callable[[list[Job]], object] | None = None,
    ) -> None:
        settings = queue.settings
        self.queue = queue
        self.concurrency = concurrency or settings.WORKER_CONCURRENCY
        # None: the registry, with built-in processors imported on first use.
        self.processors = processors
        self.lease_ms = int((lease_seconds or settings.LEASE_SECONDS) * 1000)
        self.grace = settings.SHUTDOWN_GRACE_SECONDS if grace_seconds is None else grace_seconds
        self.worker_id = worker_id or uuid.uuid4().hex[:12]
        # Claim ids: this run's own prefix (a restarted worker may keep its id), then a count.
        self._claim_ids = (f"{uuid.uuid4().hex[:8]}.{n}" for n in itertools.count(1))
        self.running: dict[str, Running] = {}
        self.buffered: collections.deque[ClaimedJob] = collections.deque()
        # The suspect this worker claimed last (see `_holds_suspect`): it holds at most one, so a
        # job that kills its worker process takes no other suspect down with it.
        self._suspect: ClaimedJob | None = None
        self._poller_suspects = True  # whether the long-poll wakes for waiting suspects too
        self.completed = 0
        self._mean_duration = 1.0  # seconds, a moving average; starts "slow": no prefetch
        self._settlements: list[Settlement] = []
        self._poke = asyncio.Event()
        self._stopping = asyncio.Event()
        self._poller: asyncio.Task[bool] | None = None
        # Pokes the claim loop when the next delayed job is due: a long-poll already blocked for
        # longer would otherwise sleep through a retry that came due meanwhile.
        self._due_timer: asyncio.TimerHandle | None = None
        self._executor = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="job")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._is_async: dict[str, bool] = {}
        self.metrics = JobMetrics()
        self.archive = archive if archive is not None else archive_in_store

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Stop claiming; `run()` then drains and returns. Safe to call from a signal handler."""
        self._stopping.set()
        self._poke.set()

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        log.info(
            "worker %s started: concurrency %d, queue %s", self.worker_id, self.concurrency, self.queue.name
        )
        background = [
            asyncio.create_task(self._renew_leases(), name="renew"),
            asyncio.create_task(self._maintain(), name="maintain"),
        ]
        try:
            await self._claim_loop()
            await self._drain()
        finally:
            if self._due_timer is not None:
                self._due_timer.cancel()
            for task in background:
                task.cancel()
            if self._poller is not None:
                self._poller.cancel()
            await asyncio.gather(*background, *(t for t in [self._poller] if t), return_exceptions=True)
            self._executor.shutdown(wait=False, cancel_futures=True)
            self.metrics.flush()
            log.info("worker %s stopped after %d jobs", self.worker_id, self.completed)

    def _wanted(self) -> int | None:
        """How many jobs to claim now; None: no call now (enough is claimed ahead, and what
        finished meanwhile goes with the next claim)."""
        if self._mean_duration >= PREFETCH_BELOW_SECONDS:
            return self.concurrency - len(self.running)
        if len(self.buffered) >= self.concurrency:
            return None
        return PREFETCH_BATCHES * self.concurrency - len(self.running) - len(self.buffered)

    async def _claim_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._poke.clear()
            self._fill_slots()
            want = self._wanted()
            if want is not None and (want > 0 or self._settlements):
                try:
                    got, next_due = await self._claim(max(0, want))
                    if failures:
                        log.info("redis reachable again after %d failed claims", failures)
                    failures = 0
                except RedisError as exc:
                    failures += 1
                    await self._redis_down(exc, failures)
                    continue
                self._wake_when_due(next_due)
                if got == want > 0:
                    continue  # the queue may hold more: claim again as soon as a slot frees
                if len(self.running) < self.concurrency:
                    self._start_poller(next_due)
            await self._poke.wait()

    async def _claim(self, want: int) -> tuple[int, int]:
        settlements, self._settlements = self._settlements, []
        try:
            result = await self.queue.claim(
                self.worker_id,
                want,
                settlements,
                self.lease_ms,
                holds_suspect=self._holds_suspect(),
                claim_id=next(self._claim_ids),
            )
        except BaseException:
            # Handed over to the next call, which has a new claim id. If Redis ran this call and
            # only every reply was lost (the client retries a dropped connection with the same id,
            # and a replay is answered from the stored reply), the next call finds these settled
            # and refuses them, and what this call claimed comes back through lease recovery.
            self._settlements[:0] = settlements
            raise
        for s, ok in zip(settlements, result.accepted, strict=True):
            if not ok:
                log.warning("job %s: outcome refused, this worker no longer owns it", s.job_id)
        for job in result.jobs:
            if job.suspect:
                self._suspect = job
        self.buffered.extend(result.jobs)
        self._fill_slots()
        return len(result.jobs), result.next_due_ms

    def _wake_when_due(self, next_due_ms: int) -> None:
        if next_due_ms < 0 or self._loop is None:
            return
        when = self._loop.time() + next_due_ms / 1000 + 0.001
        timer = self._due_timer
        if timer is not None and not timer.cancelled() and timer.when() <= when:
            return  # already set for this or an earlier time
        if timer is not None:
            timer.cancel()
        self._due_timer = self._loop.call_at(when, self._poke.set)

    def _holds_suspect(self) -> bool:
        """Whether the suspect it claimed is still its own: running, or claimed ahead and not
        started. Once it finished, its outcome goes with the next claim, which settles it first."""
        s = self._suspect
        if s is None:
            return False
        running = self.running.get(s.job_id)
        if (running is None or running.job is not s) and all(j is not s for j in self.buffered):
            self._suspect = None
        return self._suspect is not None

    def _fill_slots(self) -> None:
        while self.buffered and len(self.running) < self.concurrency:
            self._start(self.buffered.popleft())

    async def _redis_down(self, exc: Exception, failures: int) -> None:
        delay = min(5.0, 0.1 * 2**failures)
        log.warning("redis unavailable (%s); retrying in %.1f s", exc, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

    def _start_poller(self, next_due_ms: int) -> None:
        suspects = not self._holds_suspect()
        if self._poller is not None and not self._poller.done():
            if self._poller_suspects == suspects:
                return
            # It waits on the wrong batons: for suspects it may not take now, or not for those it
            # may. Dropping a blocked BLPOP closes its connection; a marker it popped as it closed
            # is put back by the next claim or maintenance call.
            self._poller.remove_done_callback(self._poller_done)
            self._poller.cancel()
        wait = MAX_IDLE_WAIT if next_due_ms < 0 else min(MAX_IDLE_WAIT, next_due_ms / 1000 + 0.001)
        self._poller_suspects = suspects
        self._poller = asyncio.create_task(
            self.queue.wait_for_work(wait, suspects=suspects), name="long-poll"
        )
        self._poller.add_done_callback(self._poller_done)

    def _poller_done(self, task: asyncio.Task[bool]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.debug("long-poll failed: %s", task.exception())
        self._poke.set()

    async def _drain(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        # Jobs claimed ahead have not started: another worker may have them at once.
        self._settlements.extend(Settlement(job, "r") for job in self.buffered)
        self.buffered.clear()
        deadline = time.monotonic() + self.grace
        if self.running:
            log.info("stopping: waiting up to %.0f s for %d running jobs", self.grace, len(self.running))
        while self.running and time.monotonic() < deadline:
            self._poke.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), deadline - time.monotonic())
            await self._flush()
        left = list(self.running.values())
        for job in self.buffered:
            self._settlements.append(Settlement(job, "r"))
        self.buffered.clear()
        for r in left:
            self._settlements.append(Settlement(r.job, "r"))
            r.ctx.lease_lost = True  # a thread still running it must not report any more
            r.task.cancel()
        if left:
            log.info(
                "released %d unfinished jobs for other workers: %s",
                len(left),
                ", ".join(r.job.job_id for r in left),
            )
        self.running.clear()
        await self._flush(final=True)

    async def _flush(self, final: bool = False) -> None:
        for attempt in range(5 if final else 1):
            if not self._settlements:
                return
            try:
                await self._claim(0)
                return
            except RedisError as exc:
                log.warning("could not hand over %d outcomes (%s)", len(self._settlements), exc)
                if final:
                    await asyncio.sleep(0.2 * 2**attempt)

    # ------------------------------------------------------------------ one job

    def _start(self, job: ClaimedJob) -> None:
        if job.suspect:
            # Logged before it runs: if it is what kills workers, this is the last line.
            log.warning(
                "job %s (%s) is a suspect (leases run out: %d): running it as this worker's only suspect",
                job.job_id,
                job.job_type,
                job.stalls,
            )
        ctx = JobContext(
            job_id=job.job_id,
            job_type=job.job_type,
            user_id=job.user_id,
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            data={},
            token=job.token,
            _report=functools.partial(self.queue.progress, job.job_id, job.token),
            _read_cancel=functools.partial(self.queue.cancel_requested, job.job_id, job.token),
            _loop=self._loop,
        )
        task = asyncio.create_task(self._execute(job, ctx))
        running = self.running[job.job_id] = Running(job, ctx, task)
        if job.timeout > 0:
            # A plain timer, not asyncio.timeout(): at thousands of jobs a second it is half the cost.
            running.timer = task.get_loop().call_later(job.timeout, self._time_out, running)

    def _time_out(self, running: Running) -> None:
        running.timed_out = True
        running.ctx.lease_lost = True  # a thread still running it must not report any more
        running.task.cancel()

    async def _execute(self, job: ClaimedJob, ctx: JobContext) -> None:
        settlement: Settlement | None
        started = time.perf_counter()
        current_job_id.set(job.job_id)  # this task's own context: log lines carry the job id
        try:
            result = await self._call_processor(job, ctx)
            settlement = Settlement(job, "c", encode_result(result))
        except JobCancelled:
            settlement = Settlement(job, "x", "cancelled at a checkpoint")
        except LeaseLost:
            log.warning("job %s: lease lost; another worker owns it now", job.job_id)
            settlement = None
        except asyncio.CancelledError:
            running = self.running.get(job.job_id)
            if running is None or not running.timed_out:
                return  # released by _drain, or its lease was lost
            settlement = self._failure(job, TimeoutError())
        except Exception as exc:
            settlement = self._failure(job, exc)
        running = self.running.pop(job.job_id, None)
        if running is None:
            return
        if running.timer is not None:
            running.timer.cancel()
        took = time.perf_counter() - started
        self._mean_duration += (took - self._mean_duration) * 0.1
        self.completed += 1
        if settlement is not None:
            self._settlements.append(settlement)
            self.metrics.job_finished(OUTCOMES.get(settlement.outcome, "failed"), took)
        self._poke.set()

    async def _call_processor(self, job: ClaimedJob, ctx: JobContext) -> Any:
        try:
            spec = get_job_type(job.job_type)
        except UnknownJobType as exc:
            raise PermanentJobError(f"unknown job type {job.job_type!r}") from exc
        fn = find_processor(job.job_type) if self.processors is None else self.processors.get(job.job_type)
        if fn is None:
            raise PermanentJobError(f"this worker has no processor for job type {job.job_type!r}")
        try:
            payload = spec.payload.model_validate_json(job.data)
        except ValidationError as exc:
            raise PermanentJobError(f"invalid payload: {exc.errors(include_url=False)}") from exc
        ctx.data = json.loads(job.data)
        is_async = self._is_async.get(job.job_type)
        if is_async is None:
            is_async = self._is_async[job.job_type] = inspect.iscoroutinefunction(fn)
        if is_async:
            return await fn(ctx, payload)
        # A thread cannot be stopped: on a timeout the job fails and frees its slot, and the thread
        # finishes on its own (its late reports are refused, the context is marked lost).
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, ctx, payload))

    def _failure(self, job: ClaimedJob, exc: Exception) -> Settlement:
        if isinstance(exc, TimeoutError):
            error = f"timed out after {job.timeout:g} s"
        else:
            error = str(exc) or type(exc).__name__
        if isinstance(exc, PermanentJobError):
            log.info("job %s failed permanently: %s", job.job_id, error)
            return Settlement(job, "f", error, "-1")
        delay = backoff_delay(job.attempt, job.backoff, job.backoff_max)
        if not isinstance(exc, TimeoutError):
            log.info("job %s attempt %d failed: %r", job.job_id, job.attempt, exc)
        return Settlement(job, "f", error, str(int(delay * 1000)))

    # ------------------------------------------------------------------ background duties

    async def _renew_leases(self) -> None:
        interval = self.lease_ms / 3000
        while True:
            await asyncio.sleep(interval)  # a period, not a wait for an event
            running = list(self.running.values())
            buffered = list(self.buffered)
            if not running and not buffered:
                continue
            leases = [(r.job.job_id, r.job.token) for r in running] + [(j.job_id, j.token) for j in buffered]
            try:
                flags = await self.queue.renew(leases, self.lease_ms)
            except RedisError as exc:
                log.warning("lease renewal failed (%s)", exc)
                continue
            lost = {
                job.job_id for job, flag in zip(buffered, flags[len(running) :], strict=True) if flag == -1
            }
            if lost:
                self.buffered = collections.deque(j for j in self.buffered if j.job_id not in lost)
            for r, flag in zip(running, flags[: len(running)], strict=True):
                if flag == 1:
                    r.ctx.cancel_requested = True
                elif flag == -1 and self.running.get(r.job.job_id) is r:
                    log.warning("job %s: lease lost; stopping it", r.job.job_id)
                    r.ctx.lease_lost = True
                    self.running.pop(r.job.job_id, None)
                    r.task.cancel()
                    self._poke.set()

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(MAINTAIN_INTERVAL * (0.5 + random.random()))  # a period, jittered
            if self.metrics.due():
                self.metrics.flush()
            try:
                promoted, recovered, expired = await self.queue.maintain()
                swept = await self._archive(expired)
            except RedisError as exc:
                log.debug("maintenance skipped (%s)", exc)
                continue
            if recovered:
                log.warning("requeued %d jobs whose worker stopped renewing its lease", recovered)
            if promoted or swept:
                log.debug("promoted %d delayed jobs, archived %d finished jobs", promoted, swept)

    async def _archive(self, expired: list[Job]) -> int:
        """Keep finished jobs past the retention in the store's history, then drop them from Redis.
        If the store is down they stay in Redis and the next round tries again."""
        if not expired:
            return 0
        try:
            await asyncio.to_thread(self.archive, expired)
        except Exception:
            log.exception("could not archive %d finished jobs; keeping them in Redis for now", len(expired))
            return 0
        return await self.queue.forget([job.job_id for job in expired])
