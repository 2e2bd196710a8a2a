"""Concurrent saves of one connection's schema cache, on each store backend: every save lands, and
each version is built on the one it replaces."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from explorer_jobs.errors import NotFound
from explorer_jobs.settings import Settings
from explorer_jobs.store.connections import StoredConnection, insert_connection, select_connection
from explorer_jobs.store.engine import dispose_engines, get_engine
from explorer_jobs.store.migrate import upgrade_database
from explorer_jobs.store.schema_caches import CacheBuilder, SchemaCacheVersion, save_schema_cache
from explorer_jobs.store.tables import schema_caches
from tests.support.databases import (
    MYSQL_ADMIN_URL,
    apply_settings,
    throwaway_mysql_databases,
    throwaway_pg_database,
)

SAVERS = 8
SAVES_EACH = 10  # back to back, so the savers keep colliding after the first round
VERSIONS = SAVERS * SAVES_EACH
USER = "alice"


@contextmanager
def throwaway_store_url(backend: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL or MariaDB database; dropped after."""
    if backend == "postgresql":
        with throwaway_pg_database() as url:
            yield url.render_as_string(hide_password=False)
    else:
        with throwaway_mysql_databases("store") as names:
            yield MYSQL_ADMIN_URL.set(database=names[0]).render_as_string(hide_password=False)


# SQLite and PostgreSQL are the documented store backends; the store migrates on MariaDB too.
@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def store(
    request: pytest.FixtureRequest, isolated_store: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """A migrated store on each backend, keeping every version the tests save."""
    apply_settings(monkeypatch, SCHEMA_CACHE_VERSIONS_KEPT=str(VERSIONS))
    if request.param == "sqlite":
        yield  # isolated_store migrated its SQLite file already
        return
    with throwaway_store_url(request.param) as url:
        apply_settings(monkeypatch, DATABASE_URL=url)
        upgrade_database()
        try:
            yield
        finally:
            dispose_engines()  # before the database is dropped under the pooled connections


def new_connection() -> str:
    connection_id = str(uuid.uuid4())
    insert_connection(
        StoredConnection(
            id=connection_id,
            user_id=USER,
            name="target",
            dialect="postgresql",
            host="127.0.0.1",
            port=5432,
            database="d",
            username="u",
            password_encrypted=None,
            training_schedule=None,
            created_at=datetime.now(UTC),
            last_trained_at=None,
        )
    )
    return connection_id


def build_by(saver: int) -> CacheBuilder:
    """A builder whose cache names its saver and whose changes name the version and saver it replaced."""

    def build(previous: SchemaCacheVersion | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        changes = {
            "fromVersion": previous.version if previous else None,
            "fromSaver": previous.schemas[0]["saver"] if previous else None,
        }
        return [{"name": "public", "saver": saver, "tables": []}], changes

    return build


def stored_versions(connection_id: str) -> list[SchemaCacheVersion]:
    query = (
        select(schema_caches)
        .where(schema_caches.c.connection_id == connection_id)
        .order_by(schema_caches.c.version)
    )
    with get_engine().connect() as conn:
        return [SchemaCacheVersion.from_row(row) for row in conn.execute(query)]


def test_concurrent_saves_all_land_each_on_the_version_it_replaces(store: None) -> None:
    connection_id = new_connection()
    start = threading.Barrier(SAVERS, timeout=10)

    def save(saver: int) -> list[int]:
        start.wait()
        return [
            save_schema_cache(connection_id, f"job-{saver}", {}, build_by(saver)).version
            for _ in range(SAVES_EACH)
        ]

    with ThreadPoolExecutor(SAVERS) as pool:
        saved = [version for versions in pool.map(save, range(SAVERS)) for version in versions]

    assert sorted(saved) == list(range(1, VERSIONS + 1))
    versions = stored_versions(connection_id)
    assert [version.version for version in versions] == list(range(1, VERSIONS + 1))
    savers = sorted(version.schemas[0]["saver"] for version in versions)
    assert savers == sorted(list(range(SAVERS)) * SAVES_EACH)
    # No lost update: version k's changes are against version k-1, as that saver stored it.
    previous: SchemaCacheVersion | None = None
    for version in versions:
        assert version.changes == {
            "fromVersion": previous.version if previous else None,
            "fromSaver": previous.schemas[0]["saver"] if previous else None,
        }
        previous = version
    connection = select_connection(USER, connection_id)
    assert connection is not None
    assert connection.last_trained_at == versions[-1].trained_at


def test_saving_for_an_unknown_connection_is_not_found(store: None) -> None:
    with pytest.raises(NotFound):
        save_schema_cache(str(uuid.uuid4()), None, {}, build_by(0))
