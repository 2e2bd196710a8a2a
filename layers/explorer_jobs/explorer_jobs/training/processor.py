"""The schema-training processor: read a connection's schema into a new cache version.

Reading happens batch by batch, each batch in a worker thread (`asyncio.to_thread`) while the
async side reports progress and checks for cancellation between batches. Doing the batching from
the async side rather than calling back from the thread keeps `JobCancelled`/`LeaseLost` raised
where the worker awaits the processor, needs no loop handle in the thread, and a cancel or timeout
of the task is noticed at the next batch boundary without a thread blocking on the event loop.
A timeout that lands mid-batch has the target end the session (`TargetSession.call`), so the job
settles and frees its slot at once instead of when the server's statement timeout ends the query.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Any

from explorer_jobs.connections.service import load_target
from explorer_jobs.connections.target import TargetSession
from explorer_jobs.context import JobContext
from explorer_jobs.errors import (
    ConfigurationError,
    NotFound,
    PermanentJobError,
    RetryableJobError,
    TargetTimeout,
    TargetUnavailable,
)
from explorer_jobs.processors import processor
from explorer_jobs.store.schema_caches import SchemaCacheVersion, save_schema_cache
from explorer_jobs.training.cache import merge_cache
from explorer_jobs.training.diff import diff_schemas
from explorer_jobs.training.introspect import Table, TableReader, TrainingPlan, batches, plan_training
from explorer_jobs.training.payload import JOB_TYPE, SchemaTrainingPayload

# At most this many progress reports per second (each is a Redis round trip and an SSE event).
PROGRESS_INTERVAL_SECONDS = 0.25
# Share of the progress bar for reading; the rest is saving.
READ_SHARE = 95.0


@processor(JOB_TYPE)
async def train_schema(ctx: JobContext, payload: SchemaTrainingPayload) -> dict[str, Any]:
    """Train the connection's schema cache; the result summarises what changed since the last version."""
    try:
        spec = await asyncio.to_thread(load_target, ctx.user_id, payload.connection_id)
    except NotFound:
        raise PermanentJobError("connection not found") from None
    except ConfigurationError as exc:
        raise PermanentJobError(str(exc)) from None
    session = TargetSession(spec)
    try:
        await asyncio.to_thread(session.open)
        plan = await session.call(
            lambda _conn, inspector: plan_training(inspector, payload.schemas, payload.tables)
        )
        trained = await _read_all(ctx, session, plan, payload)
    except TargetTimeout as exc:
        raise RetryableJobError(str(exc)) from None
    except TargetUnavailable as exc:
        raise PermanentJobError(str(exc)) from None
    finally:
        # In a thread, after any batch still running there: the session's lock orders the two.
        await asyncio.to_thread(session.close)
    await ctx.checkpoint()  # the last place to stop: saving is not interrupted
    return await _save(ctx, payload, plan, trained)


async def _read_all(
    ctx: JobContext, session: TargetSession, plan: TrainingPlan, payload: SchemaTrainingPayload
) -> dict[str, list[Table]]:
    total = plan.total_tables
    trained: dict[str, list[Table]] = {schema: [] for schema in plan.tables}
    await ctx.progress(0, f"0/{total} tables")
    reported_at = time.monotonic()
    done = 0
    reader = TableReader(payload.options)
    for schema, names in batches(plan):
        await ctx.checkpoint()
        entries = await session.call(partial(reader.read, schema, names))
        trained[schema].extend(entries)
        done += len(names)
        if time.monotonic() - reported_at >= PROGRESS_INTERVAL_SECONDS:
            await ctx.progress(READ_SHARE * done / total, f"{done}/{total} tables")
            reported_at = time.monotonic()
    return trained


async def _save(
    ctx: JobContext, payload: SchemaTrainingPayload, plan: TrainingPlan, trained: dict[str, list[Table]]
) -> dict[str, Any]:
    previous_version: list[int | None] = [None]

    def build(previous: SchemaCacheVersion | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        previous_version[0] = previous.version if previous else None
        schemas = merge_cache(previous.schemas if previous else None, plan, trained)
        return schemas, diff_schemas(previous.schemas if previous else None, schemas)

    options = payload.options.model_dump(by_alias=True)
    try:
        saved = await asyncio.to_thread(save_schema_cache, payload.connection_id, ctx.job_id, options, build)
    except NotFound:
        raise PermanentJobError("connection not found (deleted during training)") from None
    tables = [table for entries in trained.values() for table in entries]
    return {
        "connectionId": payload.connection_id,
        "version": saved.version,
        "previousVersion": previous_version[0],
        "counts": {
            "schemas": len(plan.tables),
            "tables": len(tables),
            "columns": sum(len(table["columns"]) for table in tables),
        },
        "missing": plan.missing(),
        "changes": saved.changes,
    }
