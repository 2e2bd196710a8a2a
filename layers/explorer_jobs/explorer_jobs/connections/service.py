"""What the HTTP routes and the processor do with connections. Synchronous: async callers use
`asyncio.to_thread`. Another user's connection is `NotFound`, exactly like an unknown id.

Errors: `NotFound` (404), `InvalidInput` incl. `HostNotAllowed` (422), `TargetUnavailable` incl.
`TargetTimeout` (502: the user's database cannot be reached), `ConfigurationError` (the deployment
has no usable encryption key).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from explorer_jobs.connections.catalog import table_names, user_schemas
from explorer_jobs.connections.host_guard import check_host_for_save
from explorer_jobs.connections.models import ConnectionCreate, ConnectionOut, ConnectionTest, SchemaListing
from explorer_jobs.connections.target import TargetSpec, open_target
from explorer_jobs.errors import InvalidInput, NotFound
from explorer_jobs.settings import get_settings
from explorer_jobs.store import connections as rows
from explorer_jobs.store import schema_caches
from explorer_jobs.store.crypto import decrypt_password, encrypt_password

CONNECTION_NOT_FOUND = "connection not found"


def create_connection(user_id: str, body: ConnectionCreate) -> ConnectionOut:
    """Save a connection (nothing is connected to). `InvalidInput` for a refused host or SQLite."""
    database = body.database
    if body.dialect == "sqlite":
        if not get_settings().ALLOW_SQLITE_CONNECTIONS:
            raise InvalidInput("SQLite connections are not allowed on this deployment")
        database = str(Path(database).expanduser().resolve())
    else:
        check_host_for_save(body.host, body.port or 0)
    stored = rows.StoredConnection(
        id=str(uuid.uuid4()),
        user_id=user_id,
        name=body.name,
        dialect=body.dialect,
        host=body.host,
        port=body.port,
        database=database,
        username=body.username,
        password_encrypted=None
        if body.dialect == "sqlite"
        else encrypt_password(body.password.get_secret_value()),
        # Omitted: the deployment's weekly default; an explicit null: no scheduled re-training.
        training_schedule=body.training_schedule
        if "training_schedule" in body.model_fields_set
        else get_settings().SCHEMA_TRAINING_CRON,
        created_at=datetime.now(UTC),
        last_trained_at=None,
    )
    rows.insert_connection(stored)
    return _out(stored)


def list_connections(user_id: str) -> list[ConnectionOut]:
    """The user's connections, oldest first."""
    return [_out(stored) for stored in rows.select_connections(user_id)]


def get_connection(user_id: str, connection_id: str) -> ConnectionOut:
    """One of the user's connections; `NotFound` otherwise."""
    return _out(_owned(user_id, connection_id))


def delete_connection(user_id: str, connection_id: str) -> None:
    """Delete the connection and its schema caches; `NotFound` otherwise.

    Cancelling its queued and running jobs is the caller's part (the queue's).
    """
    if not rows.delete_connection_row(user_id, connection_id):
        raise NotFound(CONNECTION_NOT_FOUND)


def test_connection(user_id: str, connection_id: str) -> ConnectionTest:
    """Connect and run `SELECT 1`; the round trip in ms. `TargetUnavailable` when it cannot."""
    spec = load_target(user_id, connection_id)
    started = time.perf_counter()
    with open_target(spec) as session:
        session.run(lambda connection, _inspector: connection.exec_driver_sql("SELECT 1").scalar())
    return ConnectionTest(ok=True, latency_ms=round((time.perf_counter() - started) * 1000, 2))


def list_schemas(user_id: str, connection_id: str) -> list[SchemaListing]:
    """The database's schemas and tables, live, without system schemas."""
    spec = load_target(user_id, connection_id)
    with open_target(spec) as session:
        listing = session.run(
            lambda _connection, inspector: [
                (schema, table_names(inspector, schema)) for schema in user_schemas(inspector)
            ]
        )
    return [SchemaListing(name=name, tables=tables) for name, tables in listing]


def get_schema_cache(user_id: str, connection_id: str) -> dict[str, Any]:
    """The newest cached schema (API.md "The cache"); `NotFound` when never trained."""
    _owned(user_id, connection_id)
    cache = schema_caches.latest_schema_cache(connection_id)
    if cache is None:
        raise NotFound("this connection has no schema cache yet")
    return cache.to_api()


def delete_schema_cache(user_id: str, connection_id: str) -> None:
    """Drop every version of the connection's schema cache; `NotFound` for an unknown connection."""
    _owned(user_id, connection_id)
    schema_caches.delete_schema_caches(connection_id)


def load_target(user_id: str, connection_id: str) -> TargetSpec:
    """The connection's target with its password decrypted, for connecting only; `NotFound` otherwise."""
    stored = _owned(user_id, connection_id)
    password = decrypt_password(stored.password_encrypted) if stored.password_encrypted else ""
    return TargetSpec(
        dialect=stored.dialect,
        host=stored.host,
        port=stored.port,
        database=stored.database,
        username=stored.username,
        password=SecretStr(password),
    )


def _owned(user_id: str, connection_id: str) -> rows.StoredConnection:
    stored = rows.select_connection(user_id, connection_id)
    if stored is None:
        raise NotFound(CONNECTION_NOT_FOUND)
    return stored


def _out(stored: rows.StoredConnection) -> ConnectionOut:
    return ConnectionOut(
        id=stored.id,
        name=stored.name,
        dialect=stored.dialect,  # type: ignore[arg-type]  # validated when saved
        host=stored.host,
        port=stored.port,
        database=stored.database,
        username=stored.username,
        training_schedule=stored.training_schedule,
        created_at=stored.created_at,
        last_trained_at=stored.last_trained_at,
    )


# Not a pytest test, whatever its name suggests when a test module imports it.
test_connection.__test__ = False  # type: ignore[attr-defined]
