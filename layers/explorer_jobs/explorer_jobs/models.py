"""The job and its events as they cross process boundaries: pydantic models, camelCase on the wire."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer
from pydantic.alias_generators import to_camel


class JobStatus(StrEnum):
    QUEUED = "queued"
    DELAYED = "delayed"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


WAITING_STATES = frozenset({JobStatus.QUEUED, JobStatus.DELAYED})
TERMINAL_STATES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


class EventType(StrEnum):
    QUEUED = "job_queued"
    STARTED = "job_started"
    PROGRESS = "job_progress"
    RETRYING = "job_retrying"
    COMPLETED = "job_completed"
    FAILED = "job_failed"
    CANCELLED = "job_cancelled"


class WireModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


def ms_to_datetime(value: str | bytes | None) -> datetime | None:
    if value in (None, b"", ""):
        return None
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC)


def iso_z(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Job(WireModel):
    """A job as the API shows it."""

    job_id: str
    job_type: str
    user_id: str
    status: JobStatus
    progress: int = Field(ge=0, le=100)
    message: str | None
    priority: int
    attempts: int
    max_attempts: int
    data: dict[str, Any]
    result: Any | None
    error: str | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    run_at: datetime | None = Field(default=None, exclude=True)

    @field_serializer("created_at", "started_at", "finished_at")
    def _times(self, value: datetime | None) -> str | None:
        return iso_z(value)

    @classmethod
    def from_redis(cls, fields: dict[str, str]) -> Job:
        """Build a job from its Redis hash (decoded to str)."""
        result = fields.get("result")
        return cls(
            job_id=fields["id"],
            job_type=fields["type"],
            user_id=fields["user"],
            status=JobStatus(fields["status"]),
            progress=int(fields.get("progress") or 0),
            message=fields.get("message") or None,
            priority=int(fields["priority"]),
            attempts=int(fields.get("attempts") or 0),
            max_attempts=int(fields["max_attempts"]),
            data=json.loads(fields.get("data") or "{}"),
            result=json.loads(result) if result else None,
            error=fields.get("error") or None,
            created_at=ms_to_datetime(fields.get("created_at")),
            started_at=ms_to_datetime(fields.get("started_at")),
            finished_at=ms_to_datetime(fields.get("finished_at")),
            run_at=ms_to_datetime(fields.get("run_at")),
        )


class JobEvent(WireModel):
    """The `data:` of one SSE event (written as JSON by the Lua scripts; this model reads it)."""

    type: EventType
    job_id: str
    job_type: str
    status: JobStatus
    progress: int
    message: str | None = None
    result: Any | None = None
    error: str | None = None
    timestamp: str


class QueueCounts(WireModel):
    job_type: str
    counts: dict[str, int]
