"""The job history: where finished jobs are archived once they expire from Redis."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from explorer_jobs.models import Job, JobStatus
from explorer_jobs.store.engine import get_engine
from explorer_jobs.store.tables import as_utc, job_history

# Rows per INSERT statement: well under SQLite's limit on bound variables.
_CHUNK = 500
_COLUMNS = [column.name for column in job_history.columns]


def archive_jobs(jobs: Iterable[Job | Mapping[str, Any]]) -> int:
    """Insert or update jobs in the history (by job id); the number written.

    Each job is a `Job` or a mapping `Job.model_validate` accepts (snake_case or camelCase keys).
    """
    rows = [_row(job if isinstance(job, Job) else Job.model_validate(job)) for job in jobs]
    with get_engine().begin() as conn:
        for start in range(0, len(rows), _CHUNK):
            _upsert(conn, rows[start : start + _CHUNK])
    return len(rows)


def get_archived_job(job_id: str) -> Job | None:
    """An archived job by id, or None. Callers check its `user_id` before showing it."""
    with get_engine().connect() as conn:
        row = conn.execute(select(job_history).where(job_history.c.job_id == job_id)).first()
    if row is None:
        return None
    values = dict(row._mapping)
    for key in ("created_at", "started_at", "finished_at"):
        values[key] = as_utc(values[key])
    values["status"] = JobStatus(values["status"])
    return Job(**values)


def _row(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "user_id": job.user_id,
        "job_type": job.job_type,
        "status": job.status.value,
        "priority": job.priority,
        "progress": job.progress,
        "message": job.message,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "data": job.data,
        "result": job.result,
        "error": job.error,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


def _upsert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if conn.dialect.name in ("postgresql", "sqlite"):
        dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        statement = dialect_insert(job_history).values(rows)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=[job_history.c.job_id],
                set_={name: statement.excluded[name] for name in _COLUMNS if name != "job_id"},
            )
        )
        return
    # Any other backend: replace within the caller's transaction.
    conn.execute(delete(job_history).where(job_history.c.job_id.in_([row["job_id"] for row in rows])))
    conn.execute(insert(job_history), rows)
