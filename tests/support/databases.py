"""Fixtures for the store and schema-training tests: an isolated store, and throwaway databases on
the real PostgreSQL and MariaDB servers (uniquely named, dropped after).

Import the fixtures into a conftest: `from tests.support.databases import isolated_store  # noqa: F401`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from explorer_jobs.settings import Settings, get_settings
from explorer_jobs.store.engine import dispose_engines
from explorer_jobs.store.migrate import upgrade_database

PG_ADMIN_URL = make_url(os.environ.get("TEST_PG_URL", "postgresql+pg8000://postgres@127.0.0.1:5432/postgres"))
MYSQL_ADMIN_URL = make_url(os.environ.get("TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/"))

# Variables a developer's shell or .env may set that would change what these tests see.
_CLEARED = ("DATABASE_URL", "ENCRYPTION_KEY_SECRET_NAME", "AWS_LAMBDA_FUNCTION_NAME", "AWS_EXECUTION_ENV")


def unique_name(prefix: str = "ej_t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def mysql_ident(name: str) -> str:
    """`name` quoted for MariaDB SQL text run through PyMySQL (which %-formats even without parameters)."""
    return "`" + name.replace("`", "``").replace("%", "%%") + "`"


def admin_engine(url: URL) -> Engine:
    return create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")


@contextmanager
def throwaway_pg_database(prefix: str = "ej_t") -> Iterator[URL]:
    """A new, empty PostgreSQL database; its URL (as the admin user). Dropped after, connections and all."""
    name = unique_name(prefix)
    admin = admin_engine(PG_ADMIN_URL)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.set(database=name)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextmanager
def throwaway_mysql_databases(*suffixes: str) -> Iterator[list[str]]:
    """New MariaDB databases named `<unique>_<suffix>`; dropped after."""
    base = unique_name()
    names = [f"{base}_{suffix}" for suffix in suffixes]
    admin = admin_engine(MYSQL_ADMIN_URL)
    with admin.connect() as conn:
        for name in names:
            conn.exec_driver_sql(f"CREATE DATABASE {mysql_ident(name)}")
    try:
        yield names
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql("SET SESSION foreign_key_checks = 0")  # they may reference each other
            for name in names:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {mysql_ident(name)}")
        admin.dispose()


def run_sql(url: URL, script: str) -> None:
    """Run `;`-separated statements (no `;` inside one) on `url` in one transaction."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            for statement in filter(None, (s.strip() for s in script.split(";"))):
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def apply_settings(monkeypatch: pytest.MonkeyPatch, **values: str) -> Settings:
    """Set environment variables and re-read the settings (monkeypatch restores the environment)."""
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture
def isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A fresh, migrated SQLite store under the test's tmp dir, its own Fernet key, and local defaults."""
    for key in _CLEARED:
        monkeypatch.delenv(key, raising=False)
    settings = apply_settings(
        monkeypatch,
        EXPLORER_JOBS_HOME=str(tmp_path / "home"),
        ENCRYPTION_KEY=Fernet.generate_key().decode(),
        ALLOW_PRIVATE_HOSTS="true",
        ALLOW_SQLITE_CONNECTIONS="true",
        TARGET_CONNECT_TIMEOUT_SECONDS="5",
        TARGET_STATEMENT_TIMEOUT_SECONDS="30",
    )
    upgrade_database()
    try:
        yield settings
    finally:
        dispose_engines()
        get_settings.cache_clear()  # monkeypatch restores the environment next; re-read it then


def target_sessions(url: URL) -> int:
    """How many sessions the project holds on the PostgreSQL database `url` names (its sessions
    carry the application name `db-explorer-jobs`)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = :db AND application_name = 'db-explorer-jobs'"
                ),
                {"db": url.database},
            ).scalar_one()
    finally:
        engine.dispose()
    return int(found)
