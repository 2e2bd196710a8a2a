"""The SSE gateway's route: the caller's job events, streamed, or long-polled behind a buffering adapter."""

from __future__ import annotations

import os
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials
from starlette.responses import Response

from explorer_jobs.api.auth import User, bearer_scheme, decode_token
from explorer_jobs.api.deps import SettingsDep
from explorer_jobs.api.openapi import STREAM_CONTENT, error_responses
from explorer_jobs.api.sse.hub import EventHub
from explorer_jobs.api.sse.poll import poll_events
from explorer_jobs.api.sse.registry import get_hub
from explorer_jobs.api.sse.stream import EventStreamResponse
from explorer_jobs.api.sse.wire import StreamId, parse_stream_id
from explorer_jobs.api.tickets import MAX_TICKET_LENGTH, redeem_ticket
from explorer_jobs.errors import Unauthenticated
from explorer_jobs.settings import Settings

router = APIRouter(prefix="/api", tags=["notifications"])

EVENT_ID_MAX = 45
LastEventIdHeader = Annotated[str | None, Header(alias="Last-Event-ID", max_length=EVENT_ID_MAX)]


async def _stream_user(
    hub: EventHub, settings: Settings, credentials: HTTPAuthorizationCredentials | None, ticket: str | None
) -> User:
    # The header wins when both are sent, and then the ticket is left unspent.
    if credentials is not None:
        return decode_token(credentials.credentials, settings)
    if ticket is not None:
        return User(id=await redeem_ticket(hub.redis, settings, ticket))
    raise Unauthenticated("missing bearer token or ticket")


def _buffered(request: Request, settings: Settings, mode: str | None) -> bool:
    """Whether this response cannot be streamed, so long-poll is the only way to answer."""
    if mode == "poll" or settings.SSE_MODE == "poll":
        return True
    if settings.SSE_MODE == "stream":
        return False
    if "aws.event" in request.scope:  # Mangum: it buffers the whole body
        return True
    on_lambda = "AWS_LAMBDA_FUNCTION_NAME" in os.environ
    return on_lambda and os.environ.get("AWS_LWA_INVOKE_MODE", "").lower() != "response_stream"


@router.get(
    "/jobs/notifications/stream",
    response_class=EventStreamResponse,
    status_code=200,
    responses={
        200: {"content": STREAM_CONTENT, "description": "the caller's job events"},
        **error_responses(401, 422, 503),
    },
)
async def stream_events(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
    ticket: Annotated[str | None, Query(max_length=MAX_TICKET_LENGTH)] = None,
    last_event_id_header: LastEventIdHeader = None,
    last_event_id: Annotated[str | None, Query(alias="lastEventId", max_length=EVENT_ID_MAX)] = None,
    mode: Annotated[Literal["stream", "poll"] | None, Query()] = None,
) -> Response:
    """The caller's job events: `job_queued`, `job_started`, `job_progress`, `job_retrying`,
    `job_completed`, `job_failed`, `job_cancelled`. Opens with a bearer header or a `ticket`;
    `Last-Event-ID` (or `lastEventId`) replays what was missed first."""
    hub = get_hub(settings)
    user = await _stream_user(hub, settings, credentials, ticket)
    raw_id = last_event_id_header or last_event_id
    after: StreamId | None = parse_stream_id(raw_id) if raw_id else None
    sub = await hub.subscribe(user.id)
    if _buffered(request, settings, mode):
        return await poll_events(hub, sub, after)
    return EventStreamResponse(hub, sub, after)
