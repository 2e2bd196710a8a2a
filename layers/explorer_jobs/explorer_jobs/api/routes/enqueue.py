"""The enqueue function's routes: queue a schema training, cancel, retry, and SSE tickets."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response, status
from fastapi.exceptions import RequestValidationError

from explorer_jobs.api.app_settings import app_settings
from explorer_jobs.api.auth import authenticate, bearer_scheme
from explorer_jobs.api.clients import get_queue
from explorer_jobs.api.connection_lookup import lookup_for, owned_by, remember_owner
from explorer_jobs.api.deps import QueueDep, SettingsDep, UserDep
from explorer_jobs.api.lean_route import LeanRoute
from explorer_jobs.api.openapi import JOB_ACCEPTED, JOB_LINKS, TICKET_LINKS, error_responses, links
from explorer_jobs.api.ratelimit import check_enqueue_rate, enqueue_allowance
from explorer_jobs.api.request_params import JsonBody, StringParam
from explorer_jobs.api.schemas import JobAccepted, Ticket, TrainSchemaRequest
from explorer_jobs.api.tickets import issue_ticket
from explorer_jobs.enqueueing import EnqueueResult, Precondition
from explorer_jobs.errors import PreconditionFailed
from explorer_jobs.models import Job
from explorer_jobs.observability import count_enqueued, current_job_id

SCHEMA_TRAINING = "schema_training"
log = logging.getLogger("explorer_jobs.api.enqueue")

router = APIRouter(prefix="/api", tags=["jobs"], responses=error_responses(401, 503))

# Named as API.md names them (`{id}`, `{jobId}`), so the OpenAPI document reads like the contract.
JobId = Annotated[str, Path(alias="jobId", min_length=1, max_length=200)]


def _training_payload(connection_id: str, body: TrainSchemaRequest) -> dict[str, Any]:
    payload: dict[str, Any] = {"connectionId": connection_id}
    if body.schemas is not None:
        payload["schemas"] = body.schemas
    if body.tables is not None:
        payload["tables"] = body.tables
    if body.options is not None:
        payload["options"] = body.options.model_dump(by_alias=True)
    return payload


# The busiest route reads its path id, header, body and caller by hand (`request_params.py` says
# why); these give the same checks, 422s and OpenAPI entries FastAPI would for declared ones. Named
# as API.md names them (`{id}`), like the declared parameters of the other routes.
TRAIN_CONNECTION_ID = StringParam("id", "path", max_length=200)
TRAIN_IDEMPOTENCY_KEY = StringParam(
    "Idempotency-Key",
    "header",
    max_length=200,
    pattern=r"^[\x21-\x7e]+$",
    description="repeating a request with the same key (per user, 24 h) answers the same jobId",
)
TRAIN_BODY = JsonBody(TrainSchemaRequest)


async def train_schema(request: Request) -> Response:
    """Queue a schema training of one of the caller's connections."""
    settings = await app_settings(request)
    user = await authenticate(request, settings)
    errors: list[dict[str, Any]] = []  # all of them in one 422, as FastAPI answers
    connection_id = TRAIN_CONNECTION_ID.read(request, errors)
    idempotency_key = TRAIN_IDEMPOTENCY_KEY.read(request, errors)
    body = await TRAIN_BODY.read(request, errors) or TrainSchemaRequest()
    if errors or connection_id is None:
        raise RequestValidationError(errors)
    queue = get_queue(settings)

    async def enqueue(precondition: Precondition | None) -> EnqueueResult:
        return await queue.enqueue(
            SCHEMA_TRAINING,
            _training_payload(connection_id, body),
            user_id=user.id,
            priority=body.priority,
            idempotency_key=idempotency_key,
            # Counted by the enqueue script itself: one round trip per request.
            rate_limit=enqueue_allowance(settings, user.id),
            precondition=precondition,
        )

    try:
        # Ownership as cached in Redis, checked by the enqueue script: one round trip.
        queued = await enqueue(owned_by(queue, user.id, connection_id))
    except PreconditionFailed:
        # Not cached (or cached as someone else's): the store decides, 404 when not the caller's.
        lookup = await lookup_for(request)
        await lookup(user.id, connection_id)
        await remember_owner(queue, user.id, connection_id)
        queued = await enqueue(None)
    job = queued.job
    current_job_id.set(job.job_id)  # this request's log lines carry the job id from here on
    if queued.created:
        count_enqueued(SCHEMA_TRAINING)
        log.info("queued %s for connection %s", SCHEMA_TRAINING, connection_id)
    accepted = JobAccepted(job_id=job.job_id, job_type=job.job_type, status=job.status)
    # Returned as a Response: FastAPI would otherwise validate and encode the model once more.
    return Response(
        accepted.model_dump_json(by_alias=True),
        status_code=status.HTTP_202_ACCEPTED,
        media_type="application/json",
        headers={"Location": f"/api/jobs/{job.job_id}"},
    )


# Served by LeanRoute (`lean_route.py` says why): it takes the Request alone and returns a Response,
# so FastAPI's per-request handler has nothing to do. The decorator takes no route class.
router.add_api_route(
    "/connections/{id}/train-schema",
    train_schema,
    methods=["POST"],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    responses={202: JOB_ACCEPTED, **error_responses(400, 404, 409, 413, 422, 429)},
    openapi_extra={
        "security": [{bearer_scheme.scheme_name: []}],
        "parameters": [TRAIN_CONNECTION_ID.openapi(), TRAIN_IDEMPOTENCY_KEY.openapi()],
        "requestBody": TRAIN_BODY.openapi(),
    },
    route_class_override=LeanRoute,
)


@router.post(
    "/jobs/{jobId}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    responses={202: links(JOB_LINKS), **error_responses(404, 409, 422)},
)
async def cancel_job(job_id: JobId, user: UserDep, queue: QueueDep) -> Job:
    """Cancel a queued or delayed job at once, an active one at its next checkpoint."""
    return await queue.cancel(job_id, user_id=user.id)


@router.post(
    "/jobs/{jobId}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    responses={202: links(JOB_LINKS), **error_responses(404, 409, 422, 429)},
)
async def retry_job(job_id: JobId, user: UserDep, queue: QueueDep, settings: SettingsDep) -> Job:
    """Queue a failed or cancelled job again under the same id."""
    await check_enqueue_rate(queue, settings, user.id)
    return await queue.retry(job_id, user_id=user.id)


@router.post("/jobs/notifications/ticket", tags=["notifications"], responses={200: links(TICKET_LINKS)})
async def create_ticket(user: UserDep, queue: QueueDep, settings: SettingsDep) -> Ticket:
    """A short-lived, single-use ticket that opens the caller's event stream (`?ticket=`)."""
    ticket = await issue_ticket(queue.redis, settings, user.id)
    return Ticket(ticket=ticket, expires_in=settings.SSE_TICKET_TTL_SECONDS)
