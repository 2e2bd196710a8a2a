"""Finished jobs archived in the store: an upsert by job id."""

from __future__ import annotations

from datetime import UTC, datetime

from explorer_jobs.models import Job, JobStatus
from explorer_jobs.settings import Settings
from explorer_jobs.store.job_history import archive_jobs, get_archived_job


def job(job_id: str, status: JobStatus = JobStatus.COMPLETED, **changes: object) -> dict[str, object]:
    values: dict[str, object] = {
        "jobId": job_id,
        "jobType": "schema_training",
        "userId": "alice",
        "status": status.value,
        "progress": 100,
        "message": None,
        "priority": 5,
        "attempts": 1,
        "maxAttempts": 3,
        "data": {"connectionId": "c1", "schemas": ["public"]},
        "result": {"version": 2},
        "error": None,
        "createdAt": "2025-03-01T10:00:00.000Z",
        "startedAt": "2025-03-01T10:00:01.000Z",
        "finishedAt": "2025-03-01T10:00:09.500Z",
    }
    values.update(changes)
    return values


def test_archive_inserts_then_updates_by_job_id(isolated_store: Settings) -> None:
    assert archive_jobs([job("j1"), job("j2", JobStatus.FAILED, error="boom", result=None)]) == 2
    first = get_archived_job("j1")
    assert first is not None
    assert first.status is JobStatus.COMPLETED
    assert first.data == {"connectionId": "c1", "schemas": ["public"]}
    assert first.finished_at == datetime(2025, 3, 1, 10, 0, 9, 500000, tzinfo=UTC)

    retried = Job.model_validate(job("j2", JobStatus.COMPLETED, attempts=2, result={"version": 3}))
    assert archive_jobs([retried]) == 1
    second = get_archived_job("j2")
    assert second is not None
    assert (second.status, second.attempts, second.result, second.error) == (
        JobStatus.COMPLETED,
        2,
        {"version": 3},
        None,
    )


def test_archive_accepts_snake_case_dumps_and_many_rows(isolated_store: Settings) -> None:
    jobs = [Job.model_validate(job(f"j{i}")).model_dump() for i in range(1200)]
    assert archive_jobs(jobs) == 1200
    assert get_archived_job("j1199") is not None


def test_unknown_job_is_none_and_empty_archive_is_a_no_op(isolated_store: Settings) -> None:
    assert archive_jobs([]) == 0
    assert get_archived_job("nope") is None
