"""A saved connection as the API reads and shows it (camelCase on the wire, never a password out)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from croniter import croniter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from explorer_jobs.models import WireModel, iso_z

Dialect = Literal["postgresql", "mysql", "sqlite"]
DEFAULT_PORTS: dict[str, int] = {"postgresql": 5432, "mysql": 3306}


def validate_cron(expression: str) -> str:
    """A five-field cron expression, normalised to single spaces; `ValueError` otherwise."""
    fields = expression.split()
    if len(fields) != 5 or not croniter.is_valid(" ".join(fields)):
        raise ValueError("must be a five-field cron expression, e.g. '0 2 * * 0'")
    return " ".join(fields)


class ConnectionCreate(BaseModel):
    """The body of `POST /api/connections`."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", str_strip_whitespace=True
    )

    name: str = Field(min_length=1, max_length=200)
    dialect: Dialect
    host: str = Field(default="", max_length=253)
    port: int | None = Field(default=None, ge=1, le=65535)
    database: str = Field(default="", max_length=1024)
    username: str = Field(default="", max_length=255)
    # SecretStr: a stray repr or log line shows '**********'; whitespace is kept, it may be meant.
    password: SecretStr = Field(default=SecretStr(""), max_length=1024)
    training_schedule: str | None = None

    @field_validator("training_schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None or not value.strip() else validate_cron(value)

    @field_validator("host")
    @classmethod
    def _unbracket(cls, value: str) -> str:
        # "[::1]" is how people write an IPv6 host next to a port; the address is what we keep.
        return value[1:-1] if value.startswith("[") and value.endswith("]") else value

    @model_validator(mode="after")
    def _fields_for_dialect(self) -> ConnectionCreate:
        if self.dialect == "sqlite":
            if self.host or self.port is not None or self.username or self.password.get_secret_value():
                raise ValueError("a sqlite connection takes only `database`, a file path")
            if not self.database:
                raise ValueError("`database` (the SQLite file path) is required")
            return self
        if not self.host:
            raise ValueError(f"`host` is required for {self.dialect}")
        if not self.username:
            raise ValueError(f"`username` is required for {self.dialect}")
        if self.dialect == "postgresql" and not self.database:
            raise ValueError("`database` is required for postgresql")
        if self.port is None:
            self.port = DEFAULT_PORTS[self.dialect]
        return self


class ConnectionOut(WireModel):
    """A connection as the API shows it. There is no password field, on purpose."""

    id: str
    name: str
    dialect: Dialect
    host: str
    port: int | None
    database: str
    username: str
    training_schedule: str | None
    created_at: datetime
    last_trained_at: datetime | None

    @field_serializer("created_at", "last_trained_at")
    def _times(self, value: datetime | None) -> str | None:
        return iso_z(value)


class ConnectionTest(WireModel):
    """The answer of `POST /api/connections/{id}/test`."""

    ok: bool
    latency_ms: float


class SchemaListing(WireModel):
    """One schema of the live listing (`GET /api/connections/{id}/schemas`)."""

    name: str
    tables: list[str]
