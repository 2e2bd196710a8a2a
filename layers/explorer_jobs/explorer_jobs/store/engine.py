"""Engines for the service's own store: created lazily, one per URL, reused across warm invocations.

Tests inject their own with `set_engine`, or point `DATABASE_URL` at a throwaway database.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from explorer_jobs.settings import get_settings

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def get_engine(url: str | None = None) -> Engine:
    """The store's engine for `url` (default: the configured `DATABASE_URL`), created on first use."""
    key = url or get_settings().database_url()
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = create_store_engine(key)
        return engine


def set_engine(engine: Engine, url: str | None = None) -> None:
    """Use `engine` for `url` (default: the configured one) from now on; for tests and embedding."""
    with _lock:
        _engines[url or get_settings().database_url()] = engine


def dispose_engines() -> None:
    """Close every cached engine's pooled connections and forget them."""
    with _lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.dispose()


def create_store_engine(url: str) -> Engine:
    """A new engine for the store at `url`, tuned for its backend."""
    sa_url = make_url(url)
    if sa_url.get_backend_name() != "sqlite":
        # Small pools: a Lambda instance serves one request at a time, a worker a handful of jobs.
        return create_engine(
            sa_url, pool_size=2, max_overflow=8, pool_pre_ping=True, pool_recycle=300, hide_parameters=True
        )
    database = sa_url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(sa_url, connect_args={"timeout": 30}, hide_parameters=True)
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets the API read while the worker writes; foreign keys are off by default in SQLite.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
    finally:
        cursor.close()
