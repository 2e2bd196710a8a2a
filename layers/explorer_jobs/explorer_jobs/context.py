"""What a processor sees of its job: identity, payload, progress and cancellation checkpoints."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError

from explorer_jobs.errors import JobCancelled, LeaseLost

log = logging.getLogger("explorer_jobs.worker")

# How long a checkpoint trusts the last word from Redis about cancellation before asking again.
CHECKPOINT_MAX_AGE = 0.25


@dataclass(slots=True)
class JobContext:
    """Handed to a processor with its payload.

    `progress()` and `checkpoint()` raise `JobCancelled` once the job's cancellation was requested
    and `LeaseLost` once another worker may own the job; processors let both propagate.
    Threads (sync processors) use the `_sync` twins.

    When Redis cannot be reached, a report is dropped and a check trusts the last answer: the job
    goes on rather than failing an attempt over a dropped connection. Whether it still owns the
    job is the lease's call (the worker's renewals set `lease_lost`), and its outcome waits for
    Redis with the worker.
    """

    job_id: str
    job_type: str
    user_id: str
    attempt: int
    max_attempts: int
    data: dict[str, Any]
    token: str
    # Wired by the worker: report progress (returns the cancel flag) and read the cancel flag.
    _report: Callable[[int, str | None], Awaitable[bool]] = field(repr=False)
    _read_cancel: Callable[[], Awaitable[bool]] = field(repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    cancel_requested: bool = False
    lease_lost: bool = False
    _checked_at: float = 0.0

    def _raise_if_stopped(self) -> None:
        if self.lease_lost:
            raise LeaseLost(f"job {self.job_id} is no longer owned by this worker")
        if self.cancel_requested:
            raise JobCancelled(f"job {self.job_id} was cancelled")

    async def progress(self, percent: float, message: str | None = None) -> None:
        """Record progress (0-100) and a message; one Redis round trip, one `job_progress` event."""
        self._raise_if_stopped()
        pct = max(0, min(100, round(percent)))
        try:
            self.cancel_requested = await self._report(pct, message) or self.cancel_requested
        except RedisError as exc:
            log.warning("job %s: progress not recorded (%s)", self.job_id, exc)
            return
        self._checked_at = time.monotonic()
        self._raise_if_stopped()

    async def checkpoint(self) -> None:
        """A safe place to stop: raises `JobCancelled` if the job's cancellation was requested."""
        self._raise_if_stopped()
        if time.monotonic() - self._checked_at >= CHECKPOINT_MAX_AGE:
            try:
                self.cancel_requested = await self._read_cancel() or self.cancel_requested
            except RedisError as exc:
                log.warning("job %s: cancellation not checked (%s)", self.job_id, exc)
                self._checked_at = time.monotonic()  # not asked again before the usual age
                return
            self._checked_at = time.monotonic()
        self._raise_if_stopped()

    def progress_sync(self, percent: float, message: str | None = None) -> None:
        self._call_from_thread(self.progress(percent, message))

    def checkpoint_sync(self) -> None:
        self._call_from_thread(self.checkpoint())

    def _call_from_thread(self, coro: Awaitable[None]) -> None:
        if self._loop is None:
            raise RuntimeError("this JobContext is not bound to a worker loop")
        asyncio.run_coroutine_threadsafe(coro, self._loop).result()  # type: ignore[arg-type]
