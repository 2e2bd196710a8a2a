"""Rows of the `connections` table. Ownership is part of every query: a row is found by user and id."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update

from explorer_jobs.store.engine import get_engine
from explorer_jobs.store.tables import as_utc, connections, schema_caches


@dataclass(frozen=True, slots=True)
class StoredConnection:
    """A saved connection as stored, password still encrypted. Internal: never returned by the API."""

    id: str
    user_id: str
    name: str
    dialect: str
    host: str
    port: int | None
    database: str
    username: str
    password_encrypted: str | None
    training_schedule: str | None
    created_at: datetime
    last_trained_at: datetime | None

    def __repr__(self) -> str:
        # Keep the ciphertext out of reprs (logs, tracebacks); it is useless there anyway.
        return f"StoredConnection(id={self.id!r}, user_id={self.user_id!r}, dialect={self.dialect!r})"

    @classmethod
    def from_row(cls, row: Any) -> StoredConnection:
        values = dict(row._mapping)
        values["created_at"] = as_utc(values["created_at"])
        values["last_trained_at"] = as_utc(values["last_trained_at"])
        return cls(**values)


def insert_connection(connection: StoredConnection) -> None:
    """Store a new connection."""
    values = {field.name: getattr(connection, field.name) for field in fields(StoredConnection)}
    with get_engine().begin() as conn:
        conn.execute(insert(connections).values(**values))


def select_connections(user_id: str) -> list[StoredConnection]:
    """A user's connections, oldest first."""
    query = (
        select(connections)
        .where(connections.c.user_id == user_id)
        .order_by(connections.c.created_at, connections.c.id)
    )
    with get_engine().connect() as conn:
        return [StoredConnection.from_row(row) for row in conn.execute(query)]


def select_connection(user_id: str, connection_id: str) -> StoredConnection | None:
    """One of a user's connections; None when unknown or someone else's."""
    query = select(connections).where(connections.c.id == connection_id, connections.c.user_id == user_id)
    with get_engine().connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else StoredConnection.from_row(row)


def select_scheduled_connections() -> list[StoredConnection]:
    """Every connection that has a training schedule (for the scheduler)."""
    query = select(connections).where(connections.c.training_schedule.is_not(None))
    with get_engine().connect() as conn:
        return [StoredConnection.from_row(row) for row in conn.execute(query)]


def delete_connection_row(user_id: str, connection_id: str) -> bool:
    """Delete a user's connection and its schema caches in one transaction; False when not found."""
    with get_engine().begin() as conn:
        # Locked first, as a cache save locks it (schema_caches._lock_connection): every writer
        # takes the connection row before the cache rows, so a delete racing a save cannot deadlock.
        owned = conn.execute(
            select(connections.c.id)
            .where(connections.c.id == connection_id, connections.c.user_id == user_id)
            .with_for_update()
        ).first()
        if owned is None:
            return False
        # Explicit rather than relying on ON DELETE CASCADE, which SQLite only honours when enabled.
        conn.execute(delete(schema_caches).where(schema_caches.c.connection_id == connection_id))
        conn.execute(delete(connections).where(connections.c.id == connection_id))
    return True


def set_last_trained(connection_id: str, trained_at: datetime) -> None:
    """Record when a connection was last trained."""
    with get_engine().begin() as conn:
        conn.execute(
            update(connections).where(connections.c.id == connection_id).values(last_trained_at=trained_at)
        )
