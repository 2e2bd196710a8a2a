"""The store's tables (SQLAlchemy Core). Alembic migrations in `explorer_jobs/migrations` create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeEngine

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

JSONDocument: TypeEngine[Any] = JSON().with_variant(JSONB(), "postgresql")

connections = Table(
    "connections",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(255), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("dialect", String(20), nullable=False),
    Column("host", String(255), nullable=False),
    Column("port", Integer, nullable=True),
    Column("database", String(1024), nullable=False),
    Column("username", String(255), nullable=False),
    Column("password_encrypted", Text, nullable=True),
    Column("training_schedule", String(255), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_trained_at", DateTime(timezone=True), nullable=True),
)

schema_caches = Table(
    "schema_caches",
    metadata,
    Column(
        "connection_id",
        String(36),
        ForeignKey("connections.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("job_id", String(64), nullable=True),
    Column("trained_at", DateTime(timezone=True), nullable=False),
    Column("options", JSONDocument, nullable=False),
    Column("schemas", JSONDocument, nullable=False),
    Column("changes", JSONDocument, nullable=True),
)

job_history = Table(
    "job_history",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("user_id", String(255), nullable=False),
    Column("job_type", String(100), nullable=False),
    Column("status", String(20), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("progress", Integer, nullable=False),
    Column("message", Text, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("data", JSONDocument, nullable=False),
    Column("result", JSONDocument, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Index("ix_job_history_user_id_created_at", "user_id", "created_at"),
)


def as_utc(value: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite hands back naive ones; they were stored as UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
