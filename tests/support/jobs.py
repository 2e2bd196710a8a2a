"""Job types the tests run: registered on import, in-process or by a worker started with
`explorer-jobs worker --import tests.support.jobs`."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from pydantic import BaseModel

from explorer_jobs.context import JobContext
from explorer_jobs.errors import PermanentJobError
from explorer_jobs.jobtypes import JobTypeSpec, register_job_type
from explorer_jobs.processors import processor


class EchoPayload(BaseModel):
    """What a test job does: echo `value`, optionally after steps, failures or a marker line."""

    value: Any = None
    steps: int = 0  # progress steps, each a checkpoint
    step_seconds: float = 0.0
    fail_times: int = 0  # fail the first N attempts (retryable)
    permanent: bool = False  # fail at once, without retry
    marker: str | None = None  # append "<jobId> <attempt>\n" here when the job starts
    gate: str | None = None  # after the steps, block until this file exists (a test opens the gate)
    # After the marker line, sleep this long with no Redis call: a worker frozen here and thawed
    # past its lease returns its result before it can notice the lost lease (tests/chaos).
    hold_seconds: float = 0.0


register_job_type(
    JobTypeSpec(
        "test_echo",
        EchoPayload,
        max_attempts=3,
        backoff_seconds=0.05,
        backoff_max_seconds=0.2,
        timeout_seconds=30,
    )
)


def _mark(path: str, line: str) -> None:
    # O_APPEND writes of one short line are atomic between processes.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@processor("test_echo")
async def echo(ctx: JobContext, payload: EchoPayload) -> dict[str, Any]:
    if payload.marker:
        _mark(payload.marker, f"{ctx.job_id} {ctx.attempt}\n")
    if payload.hold_seconds:
        await asyncio.sleep(payload.hold_seconds)
    for step in range(payload.steps):
        await ctx.progress(100 * step // max(1, payload.steps), f"step {step + 1}/{payload.steps}")
        await ctx.checkpoint()
        if payload.step_seconds:
            await asyncio.sleep(payload.step_seconds)
    while payload.gate and not os.path.exists(payload.gate):  # noqa: ASYNC240 (a stat, microseconds)
        await ctx.checkpoint()
        await asyncio.sleep(0.01)  # polling a file the test creates; bounded by the job timeout
    if payload.permanent:
        raise PermanentJobError("bad options: this cannot succeed")
    if ctx.attempt <= payload.fail_times:
        raise RuntimeError(f"transient failure on attempt {ctx.attempt}")
    return {"echo": payload.value, "attempt": ctx.attempt}


class SyncPayload(BaseModel):
    value: int


register_job_type(JobTypeSpec("test_sync", SyncPayload, max_attempts=1))


@processor("test_sync")
def double_in_thread(ctx: JobContext, payload: SyncPayload) -> dict[str, int]:
    ctx.progress_sync(50, "half way, from a thread")
    return {"double": payload.value * 2}


class PoisonPayload(BaseModel):
    marker: str | None = None  # append "<jobId> <attempt>\n" here before dying


register_job_type(JobTypeSpec("test_poison", PoisonPayload, max_attempts=100, timeout_seconds=30))


@processor("test_poison")
async def poison(ctx: JobContext, payload: PoisonPayload) -> None:
    """Kills the worker process that runs it (a segfaulting driver, an OOM kill): the job can only
    end by running out of stalls."""
    if payload.marker:
        _mark(payload.marker, f"{ctx.job_id} {ctx.attempt}\n")
    os.kill(os.getpid(), signal.SIGKILL)


class TargetSleepPayload(BaseModel):
    connection_id: str
    seconds: float = 60.0


register_job_type(JobTypeSpec("test_target_sleep", TargetSleepPayload, max_attempts=1, timeout_seconds=30))


@processor("test_target_sleep")
async def target_sleep(ctx: JobContext, payload: TargetSleepPayload) -> None:
    """A query that hangs on a saved connection's server (pg_sleep, SLEEP), in a session opened and
    closed as the schema-training processor does."""
    # Imported here: a worker started for the other test jobs does not load SQLAlchemy and drivers.
    from explorer_jobs.connections.service import load_target
    from explorer_jobs.connections.target import TargetSession

    spec = await asyncio.to_thread(load_target, ctx.user_id, payload.connection_id)
    sql = "SELECT pg_sleep(%s)" if spec.dialect == "postgresql" else "SELECT SLEEP(%s)"
    session = TargetSession(spec)
    try:
        await asyncio.to_thread(session.open)
        await session.call(lambda conn, _i: conn.exec_driver_sql(sql, (payload.seconds,)).all())
    finally:
        await asyncio.to_thread(session.close)
