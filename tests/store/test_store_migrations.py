"""The shipped Alembic migrations build the store on a fresh SQLite file and a fresh PostgreSQL database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from explorer_jobs.store.migrate import alembic_config, upgrade_database
from explorer_jobs.store.tables import metadata
from tests.support.databases import throwaway_pg_database

TABLES = {"connections", "schema_caches", "job_history", "alembic_version"}


def assert_migrated(url: str | URL) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == TABLES
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0001"
            # The migration and tables.py describe the same schema: autogenerate finds nothing to do.
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        engine.dispose()


def test_upgrade_creates_a_fresh_sqlite_store_and_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'store.db'}"
    upgrade_database(url)
    upgrade_database(url)
    assert_migrated(url)


def test_upgrade_creates_a_fresh_postgresql_store() -> None:
    with throwaway_pg_database() as url:
        rendered = url.render_as_string(hide_password=False)
        upgrade_database(rendered)
        upgrade_database(rendered)
        assert_migrated(url)


def test_upgrade_uses_the_configured_database_url(isolated_store: object, tmp_path: Path) -> None:
    # The fixture ran upgrade_database() with no argument: the default SQLite file under the home.
    assert_migrated(f"sqlite:///{tmp_path / 'home' / 'explorer_jobs.db'}")


def test_migration_scripts_are_found_inside_the_package() -> None:
    location = Path(alembic_config().get_main_option("script_location") or "")
    assert (location / "env.py").is_file()
    assert list((location / "versions").glob("v0001_*.py"))


def test_downgrade_to_base_drops_everything(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade_database(url)
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == {"alembic_version"}
    finally:
        engine.dispose()
