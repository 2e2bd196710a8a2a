"""The schema-training payload, registered as a job type at import.

Light on purpose (pydantic only): the enqueue and status functions import it, and must not pull in
SQLAlchemy or a database driver.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from explorer_jobs.jobtypes import JobTypeSpec, register_job_type

JOB_TYPE = "schema_training"

# Catalog names are bound as parameters, never pasted into SQL; the limits only keep payloads sane.
Name = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class TrainingOptions(_Model):
    """What to read of each table; what is off comes out as `[]` (or null for `primaryKey`)."""

    include_columns: bool = True
    include_types: bool = True
    include_constraints: bool = True
    include_indexes: bool = True
    include_foreign_keys: bool = True


class SchemaTrainingPayload(_Model):
    """A training request: no `schemas` means all; a schema named in `tables` is trained for those only."""

    connection_id: str = Field(min_length=1, max_length=64)
    schemas: list[Name] | None = Field(default=None, max_length=10_000)
    tables: dict[Name, Annotated[list[Name], Field(max_length=100_000)]] | None = Field(
        default=None, max_length=10_000
    )
    options: TrainingOptions = Field(default_factory=TrainingOptions)


SCHEMA_TRAINING = register_job_type(
    JobTypeSpec(
        name=JOB_TYPE,
        payload=SchemaTrainingPayload,
        priority=5,
        max_attempts=3,
        # Generous: a large remote catalog takes minutes; each statement is bounded separately.
        timeout_seconds=1800.0,
    )
)
