"""How many statements a training sends to the target: a few per batch, not one per table."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, event

from explorer_jobs.settings import Settings
from explorer_jobs.training import introspect
from explorer_jobs.training.payload import SchemaTrainingPayload
from explorer_jobs.training.processor import train_schema
from tests.support.databases import (
    MYSQL_ADMIN_URL,
    admin_engine,
    run_sql,
    throwaway_mysql_databases,
    throwaway_pg_database,
    unique_name,
)
from tests.support.training_targets import (
    CANARY,
    MySQLTarget,
    add_mysql_connection,
    add_pg_connection,
    make_context,
)


async def test_mariadb_queries_do_not_grow_with_tables(isolated_store: Settings) -> None:
    counts = [await _mariadb_training_queries(tables, "SELECT, REFERENCES") for tables in (10, 50)]
    assert counts[0] == counts[1]
    assert counts[0] <= 10  # listing the databases and tables, then six catalog queries


async def test_a_select_only_mariadb_account_reads_foreign_key_actions_per_table(
    isolated_store: Settings,
) -> None:
    # MariaDB hides REFERENTIAL_CONSTRAINTS from an account holding nothing but SELECT; the
    # actions are then read from SHOW CREATE TABLE, one per table that has foreign keys.
    counts = [await _mariadb_training_queries(tables, "SELECT") for tables in (10, 20)]
    assert counts[1] - counts[0] == 10
    without_foreign_keys = [
        await _mariadb_training_queries(tables, "SELECT", foreign_keys=False) for tables in (10, 20)
    ]
    assert without_foreign_keys[0] == without_foreign_keys[1]


async def test_postgresql_costs_one_query_per_batch(
    isolated_store: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with throwaway_pg_database() as url:
        run_sql(url, _chained_tables("public", 20, foreign_keys=True))
        connection_id = add_pg_connection("alice", url)
        one_batch = await _training_queries("postgresql", connection_id)
        monkeypatch.setattr(introspect, "MIN_BATCH_TABLES", 10)  # twenty tables, two batches
        two_batches = await _training_queries("postgresql", connection_id)
    # The second batch's types were all seen in the first: no new question to SQLAlchemy.
    assert two_batches == one_batch + 1
    assert one_batch <= 6


async def _mariadb_training_queries(tables: int, grants: str, foreign_keys: bool = True) -> int:
    with throwaway_mysql_databases("q") as (database,), _mysql_user(database, grants) as user:
        run_sql(MYSQL_ADMIN_URL, _chained_tables(f"`{database}`", tables, foreign_keys))
        connection_id = add_mysql_connection("alice", MySQLTarget([database], user))
        return await _training_queries("mysql", connection_id)


async def _training_queries(dialect: str, connection_id: str) -> int:
    ctx, _ = make_context("alice")
    with _counted(dialect) as count:
        result = await train_schema(ctx, SchemaTrainingPayload(connection_id=connection_id))
    assert result["counts"]["tables"] > 0
    return count[0]


@contextmanager
def _counted(dialect: str) -> Iterator[list[int]]:
    """Counts the statements sent to engines of `dialect` (the target, not the SQLite store)."""
    count = [0]

    def before(conn: Any, *_args: Any) -> None:
        if conn.dialect.name == dialect:
            count[0] += 1

    event.listen(Engine, "before_cursor_execute", before)
    try:
        yield count
    finally:
        event.remove(Engine, "before_cursor_execute", before)


def _chained_tables(schema: str, tables: int, foreign_keys: bool) -> str:
    """`tables` tables, each (when asked) with a foreign key to the one before (the first to itself)."""
    statements = []
    for i in range(tables):
        parent = f"{schema}.t_{max(i - 1, 0):03}"
        reference = f"REFERENCES {parent} (id) ON DELETE CASCADE" if foreign_keys else ""
        statements.append(
            f"CREATE TABLE {schema}.t_{i:03} (id int PRIMARY KEY, parent_id int {reference}, "
            f"name varchar(20) NOT NULL UNIQUE, total numeric(10, 2) DEFAULT 0)"
        )
    return ";\n".join(statements)


@contextmanager
def _mysql_user(database: str, grants: str) -> Iterator[str]:
    """A MariaDB account (password CANARY) holding `grants` (a fixed test value) on `database`."""
    user = unique_name("ej_u")
    admin = admin_engine(MYSQL_ADMIN_URL)
    with admin.connect() as conn:
        conn.exec_driver_sql("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, CANARY))
        conn.exec_driver_sql(f"GRANT {grants} ON `{database}`.* TO %s@'%%'", (user,))
    try:
        yield user
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql("DROP USER IF EXISTS %s@'%%'", (user,))
        admin.dispose()
