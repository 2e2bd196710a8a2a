"""The status function's routes: a job, the caller's jobs, queue counts, and the health check."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from explorer_jobs.api.deps import QueueDep, SettingsDep, UserDep
from explorer_jobs.api.health import check_health
from explorer_jobs.api.openapi import JOB_LINKS, error_responses, links
from explorer_jobs.api.schemas import Health, JobList, QueueList
from explorer_jobs.errors import InvalidInput
from explorer_jobs.jobtypes import known_job_types
from explorer_jobs.models import Job, JobStatus
from explorer_jobs.queue import MAX_PAGE_SIZE

DEFAULT_PAGE_SIZE = 20

router = APIRouter(prefix="/api", tags=["jobs"], responses=error_responses(401, 503))
health_router = APIRouter(tags=["operations"])

JobId = Annotated[str, Path(alias="jobId", min_length=1, max_length=200)]
JobTypeFilter = Annotated[str | None, Query(alias="jobType", max_length=100)]


def _check_job_type(job_type: str | None) -> None:
    # A filter naming no job type is a mistake worth telling (422), unlike a job id, which is 404.
    if job_type is not None and job_type not in known_job_types():
        raise InvalidInput(f"unknown jobType {job_type!r}")


@router.get("/jobs/{jobId}", responses={200: links(JOB_LINKS), **error_responses(404, 422)})
async def get_job(job_id: JobId, user: UserDep, queue: QueueDep, job_type: JobTypeFilter = None) -> Job:
    """One of the caller's jobs; 404 for an unknown id, someone else's, or another `jobType`."""
    return await queue.get(job_id, user_id=user.id, job_type=job_type)


@router.get("/jobs", responses=error_responses(422))
async def list_jobs(
    user: UserDep,
    queue: QueueDep,
    status: Annotated[JobStatus | None, Query()] = None,
    job_type: JobTypeFilter = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
) -> JobList:
    """The caller's jobs, newest first; pass `nextCursor` back as `cursor` for the next page."""
    _check_job_type(job_type)
    page = await queue.list_jobs(user.id, status=status, job_type=job_type, limit=limit, cursor=cursor)
    return JobList(jobs=page.jobs, next_cursor=page.next_cursor)


@router.get("/queues", tags=["operations"])
async def queue_counts(user: UserDep, queue: QueueDep) -> QueueList:
    """Jobs per type and status: the caller's own, or every user's for an admin."""
    return QueueList(queues=await queue.counts(None if user.is_admin else user.id))


@health_router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
async def healthz(queue: QueueDep, settings: SettingsDep) -> JSONResponse:
    """200 when Redis and the store answer, 503 otherwise (each check bounded in time)."""
    checks = await check_health(queue, settings)
    healthy = all(state != "down" for state in checks.values())
    body = Health(status="ok" if healthy else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(by_alias=True), status_code=200 if healthy else 503)
