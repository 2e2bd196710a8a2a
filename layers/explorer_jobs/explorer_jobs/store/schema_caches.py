"""Versions of a connection's schema cache: each training adds one, the newest few are kept."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from explorer_jobs.errors import NotFound
from explorer_jobs.models import iso_z
from explorer_jobs.settings import get_settings
from explorer_jobs.store.engine import get_engine
from explorer_jobs.store.tables import as_utc, connections, schema_caches

CacheBuilder = Callable[["SchemaCacheVersion | None"], tuple[list[dict[str, Any]], dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class SchemaCacheVersion:
    """One stored version of a connection's schema cache."""

    connection_id: str
    version: int
    job_id: str | None
    trained_at: datetime
    options: dict[str, Any]
    schemas: list[dict[str, Any]]
    changes: dict[str, Any] | None

    def to_api(self) -> dict[str, Any]:
        """The cache as `GET /api/connections/{id}/schema-cache` answers it."""
        return {
            "connectionId": self.connection_id,
            "version": self.version,
            "jobId": self.job_id,
            "trainedAt": iso_z(self.trained_at),
            "options": self.options,
            "schemas": self.schemas,
        }

    @classmethod
    def from_row(cls, row: Any) -> SchemaCacheVersion:
        values = dict(row._mapping)
        values["trained_at"] = as_utc(values["trained_at"])
        return cls(**values)


def latest_schema_cache(connection_id: str) -> SchemaCacheVersion | None:
    """The newest version of a connection's cache, or None when it was never trained."""
    with get_engine().connect() as conn:
        return _latest(conn, connection_id)


def delete_schema_caches(connection_id: str) -> int:
    """Drop every version of a connection's cache; the number of versions dropped."""
    with get_engine().begin() as conn:
        _lock_connection(conn, connection_id)
        result = conn.execute(delete(schema_caches).where(schema_caches.c.connection_id == connection_id))
    return result.rowcount


def save_schema_cache(
    connection_id: str, job_id: str | None, options: dict[str, Any], build: CacheBuilder
) -> SchemaCacheVersion:
    """Add the next version of a connection's cache and set its `last_trained_at`, in one transaction.

    `build(previous)` returns the new version's schemas and its changes against `previous`; it runs
    inside the transaction, so the version it builds on is the one it replaces. Concurrent saves of
    one connection wait for each other and all land, one version each. Raises `NotFound` when the
    connection was deleted meanwhile.
    """
    with get_engine().begin() as conn:
        if not _lock_connection(conn, connection_id):
            raise NotFound("connection not found")
        trained_at = datetime.now(UTC)
        previous = _latest(conn, connection_id)
        schemas, changes = build(previous)
        saved = SchemaCacheVersion(
            connection_id=connection_id,
            version=(previous.version if previous else 0) + 1,
            job_id=job_id,
            trained_at=trained_at,
            options=options,
            schemas=schemas,
            changes=changes,
        )
        conn.execute(
            insert(schema_caches).values(
                connection_id=saved.connection_id,
                version=saved.version,
                job_id=saved.job_id,
                trained_at=saved.trained_at,
                options=saved.options,
                schemas=saved.schemas,
                changes=saved.changes,
            )
        )
        conn.execute(
            update(connections).where(connections.c.id == connection_id).values(last_trained_at=trained_at)
        )
        keep = get_settings().SCHEMA_CACHE_VERSIONS_KEPT
        conn.execute(
            delete(schema_caches).where(
                schema_caches.c.connection_id == connection_id,
                schema_caches.c.version <= saved.version - keep,
            )
        )
    return saved


def _lock_connection(conn: Connection, connection_id: str) -> bool:
    # Writers of one connection's cache take turns on its row, held until the transaction ends:
    # reading the latest version and inserting the next is only safe one writer at a time. Taken
    # before any other read, so that what the transaction reads next (a MySQL snapshot included)
    # is what the previous writer committed. False when there is no such connection.
    if conn.dialect.name == "sqlite":
        # SQLite has no row locks, and pysqlite would only begin the transaction at the first write,
        # after the reads. Begin it as the writer instead: others queue on the busy timeout.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    query = select(connections.c.id).where(connections.c.id == connection_id).with_for_update()
    return conn.execute(query).first() is not None


def _latest(conn: Connection, connection_id: str) -> SchemaCacheVersion | None:
    newest = (
        select(func.max(schema_caches.c.version))
        .where(schema_caches.c.connection_id == connection_id)
        .scalar_subquery()
    )
    row = conn.execute(
        select(schema_caches).where(
            schema_caches.c.connection_id == connection_id, schema_caches.c.version == newest
        )
    ).first()
    return None if row is None else SchemaCacheVersion.from_row(row)
