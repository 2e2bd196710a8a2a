"""Request and response bodies of the job routes (camelCase on the wire, like `models.py`)."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from explorer_jobs.models import Job, JobStatus, QueueCounts, WireModel
from explorer_jobs.training.payload import Name, TrainingOptions


class TrainSchemaRequest(WireModel):
    """Body of `POST /api/connections/{id}/train-schema`; every field optional."""

    model_config = ConfigDict(extra="forbid")

    schemas: list[Name] | None = Field(default=None, max_length=10_000)
    tables: dict[Name, list[Name]] | None = Field(default=None, max_length=10_000)
    options: TrainingOptions | None = None
    priority: int = Field(default=5, ge=1, le=10, description="1 is the most urgent")


class JobAccepted(WireModel):
    """The 202 answer of a request that queued (or found, by idempotency key) a job."""

    job_id: str
    job_type: str
    status: JobStatus


class JobList(WireModel):
    jobs: list[Job]
    next_cursor: str | None


class QueueList(WireModel):
    queues: list[QueueCounts]


class Ticket(WireModel):
    ticket: str
    expires_in: int = Field(description="seconds")


class Health(WireModel):
    status: str
    checks: dict[str, str]
