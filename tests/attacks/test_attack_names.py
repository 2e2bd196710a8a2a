"""Hostile catalog names on the real PostgreSQL and MariaDB: quotes, backticks, semicolons carrying
SQL aimed at a sentinel, %-format and LIKE wildcards, dots, backslashes, Unicode, and the longest
names each server takes (63 bytes on PostgreSQL, 64 characters on MariaDB). Trained through the
API by a real worker, they read back exactly from the schema cache (and the live listing), names
asked for that the database lacks come back as missing, and nothing on the server changes: the
sentinel keeps its rows, and no object is created or dropped.

The logins may write (a superuser over trust on PostgreSQL; every privilege on these databases on
MariaDB): had a name been pasted into SQL, the statements it carries could have run.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from explorer_jobs.settings import Settings
from tests.api.support import auth
from tests.support.databases import (
    MYSQL_ADMIN_URL,
    admin_engine,
    mysql_ident,
    throwaway_mysql_databases,
    throwaway_pg_database,
    unique_name,
)

from .support import run_job

SENTINEL_ROWS = [(1, "keep me"), (2, "and me")]

# PostgreSQL: schema -> tables. Names are at most 63 bytes (longer ones would be truncated).
PG_LONGEST_SCHEMA = "é" * 31 + "s"
PG_INJECTION_SCHEMA = 'x"; DROP SCHEMA sentinel CASCADE; --'
PG_UNICODE_SCHEMA = "ünï 日本 😀"
PG_NAMES: dict[str, list[str]] = {
    'it\'s "double" `tick`': ['it\'s "double" `tick`', "MiXeD", "mixed", " lead and trail "],
    PG_INJECTION_SCHEMA: ["y'); DROP TABLE sentinel.keep; --", "c.d"],
    # The same word composed and decomposed (NFC, NFD): two tables, neither normalised into the other.
    PG_UNICODE_SCHEMA: ["ünï 表 😀", "t" * 63, "caf\u00e9", "cafe\u0301"],
    PG_LONGEST_SCHEMA: ["ö" * 31 + "t"],
    "pct %s %(x)s %% {0} _": ["pct %s %(x)s %% {0} _", "back\\slash"],
    "a.b": ["public.keep"],
}
PG_ODD_COLUMN = 'col "q"; DROP TABLE sentinel.keep; --'

# MariaDB: a schema is a database. Each name is `<unique prefix>_<suffix>`, at most 64 characters.
MARIA_SUFFIXES = {
    "quotes": 'it\'s "dq" `bt`',
    "injection": "x`; DROP DATABASE `{sentinel}`; --",
    "unicode": "ünï 日本 é",
    "longest": "é" * 64,  # cut to 64 characters with the prefix
    "percent": "pct %s %(x)s %% a.b_",
}
MARIA_TABLES: dict[str, list[str]] = {
    "quotes": ['it\'s "dq" `bt`', "MiXeD", "mixed", " lead"],
    "injection": ["y; DROP TABLE keep; --", "c.d", "back\\slash"],
    "unicode": ["ünï 表", "t" * 64],
    "longest": ["ö" * 64],
    "percent": ["pct %s %(x)s %% _"],
}
MARIA_ODD_COLUMN = "col `q`; DROP TABLE keep; --"


def pg_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def run_statements(url: URL, statements: list[str]) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


@dataclass
class Target:
    """A database full of hostile names, the connection body that reaches it, and its names."""

    connection: dict[str, Any]
    names: dict[str, list[str]]  # schema -> tables, every one the login sees
    odd_schema: str
    odd_table: str  # in odd_schema, with odd_column and a foreign key named "fk; DROP --"
    odd_column: str
    snapshot: Callable[[], dict[str, Any]]  # every object of the server that the test may reach


def pg_snapshot(url: URL) -> dict[str, Any]:
    """Every object of the database, and the sentinel's rows."""
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        snapshot = {
            "namespaces": conn.execute(text("SELECT nspname FROM pg_namespace ORDER BY 1")).all(),
            "relations": conn.execute(
                text(
                    "SELECT n.nspname, c.relname, c.relkind FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace ORDER BY 1, 2"
                )
            ).all(),
            "functions": conn.execute(text("SELECT oid, proname FROM pg_proc ORDER BY 1")).all(),
            "types": conn.execute(text("SELECT oid, typname FROM pg_type ORDER BY 1")).all(),
            "sentinel": conn.execute(text("SELECT id, v FROM sentinel.keep ORDER BY id")).all(),
        }
    engine.dispose()
    return snapshot


@pytest.fixture
def pg_names() -> Iterator[Target]:
    with throwaway_pg_database() as url:
        statements = [
            "CREATE SCHEMA sentinel",
            "CREATE TABLE sentinel.keep (id int PRIMARY KEY, v text)",
            "INSERT INTO sentinel.keep VALUES " + ", ".join(f"({i}, '{v}')" for i, v in SENTINEL_ROWS),
        ]
        for schema, tables in PG_NAMES.items():
            assert len(schema.encode()) <= 63 and all(len(t.encode()) <= 63 for t in tables)
            statements.append(f"CREATE SCHEMA {pg_ident(schema)}")
            for table in tables:
                statements.append(
                    f"CREATE TABLE {pg_ident(schema)}.{pg_ident(table)} (id int PRIMARY KEY, "
                    f"{pg_ident(PG_ODD_COLUMN)} text)"
                )
        # A foreign key from one hostile name to another, across schemas.
        statements.append(
            f"ALTER TABLE {pg_ident(PG_INJECTION_SCHEMA)}.{pg_ident('c.d')} ADD CONSTRAINT "
            f"{pg_ident('fk; DROP --')} FOREIGN KEY (id) REFERENCES "
            f"{pg_ident(PG_UNICODE_SCHEMA)}.{pg_ident('ünï 表 😀')} (id)"
        )
        run_statements(url, statements)
        assert len(PG_LONGEST_SCHEMA.encode()) == 63 and len(("ö" * 31 + "t").encode()) == 63
        connection = {
            "name": "hostile names",
            "dialect": "postgresql",
            "host": url.host,
            "port": url.port or 5432,
            "database": url.database,
            "username": url.username,
        }
        names = {"public": [], "sentinel": ["keep"], **PG_NAMES}
        yield Target(connection, names, PG_INJECTION_SCHEMA, "c.d", PG_ODD_COLUMN, lambda: pg_snapshot(url))


def maria_snapshot(databases: list[str]) -> dict[str, Any]:
    engine = admin_engine(MYSQL_ADMIN_URL)
    in_ours = {"names": databases}
    with engine.connect() as conn:

        def rows(sql: str) -> list[Any]:
            # Sorted here: the server's collation may tie names that differ in case only.
            found = conn.execute(text(sql).bindparams(bindparam("names", expanding=True)), in_ours).all()
            return sorted(tuple(row) for row in found)

        prefixes = tuple({name[: len(unique_name())] for name in databases})
        snapshot = {
            "databases": sorted(
                name
                for (name,) in conn.execute(text("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA"))
                if name.startswith(prefixes)
            ),
            "tables": rows(
                "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, CREATE_TIME FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA IN :names"
            ),
            "routines": rows(
                "SELECT ROUTINE_SCHEMA, ROUTINE_NAME FROM information_schema.ROUTINES "
                "WHERE ROUTINE_SCHEMA IN :names"
            ),
            "triggers": rows(
                "SELECT TRIGGER_SCHEMA, TRIGGER_NAME FROM information_schema.TRIGGERS "
                "WHERE TRIGGER_SCHEMA IN :names"
            ),
            "events": rows(
                "SELECT EVENT_SCHEMA, EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA IN :names"
            ),
            "sentinel": conn.exec_driver_sql(
                f"SELECT id, v FROM {mysql_ident(databases[-1])}.keep ORDER BY id"
            ).all(),
        }
    engine.dispose()
    return snapshot


@pytest.fixture
def maria_names() -> Iterator[Target]:
    keys = list(MARIA_SUFFIXES)
    width = 64 - len(unique_name()) - 1
    with throwaway_mysql_databases("s") as (sentinel,):
        suffixes = [MARIA_SUFFIXES[k].format(sentinel=sentinel)[:width] for k in keys]
        with throwaway_mysql_databases(*suffixes) as databases:
            assert len(databases[keys.index("longest")]) == 64
            by_key = dict(zip(keys, databases, strict=True))
            user, password = unique_name("ej_u"), secrets.token_urlsafe(16)
            admin = admin_engine(MYSQL_ADMIN_URL)
            with admin.connect() as conn:
                conn.exec_driver_sql(
                    f"CREATE TABLE {mysql_ident(sentinel)}.keep (id int PRIMARY KEY, v text)"
                )
                conn.exec_driver_sql(
                    f"INSERT INTO {mysql_ident(sentinel)}.keep VALUES (%s, %s), (%s, %s)",
                    tuple(v for row in SENTINEL_ROWS for v in row),
                )
                for key, tables in MARIA_TABLES.items():
                    for table in tables:
                        conn.exec_driver_sql(
                            f"CREATE TABLE {mysql_ident(by_key[key])}.{mysql_ident(table)} "
                            f"(id int PRIMARY KEY, {mysql_ident(MARIA_ODD_COLUMN)} text)"
                        )
                conn.exec_driver_sql(
                    f"ALTER TABLE {mysql_ident(by_key['injection'])}.{mysql_ident('c.d')} ADD CONSTRAINT "
                    f"{mysql_ident('fk; DROP --')} FOREIGN KEY (id) REFERENCES "
                    f"{mysql_ident(by_key['unicode'])}.{mysql_ident('ünï 表')} (id)"
                )
                conn.exec_driver_sql("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
                for database in [*databases, sentinel]:
                    conn.exec_driver_sql(
                        f"GRANT ALL PRIVILEGES ON {mysql_ident(database)}.* TO %s@'%%'", (user,)
                    )
            connection = {
                "name": "hostile names",
                "dialect": "mysql",
                "host": MYSQL_ADMIN_URL.host,
                "port": MYSQL_ADMIN_URL.port or 3306,
                "database": "",
                "username": user,
                "password": password,
            }
            names = {by_key[k]: MARIA_TABLES[k] for k in keys} | {sentinel: ["keep"]}
            try:
                ours = [*databases, sentinel]
                yield Target(
                    connection,
                    names,
                    by_key["injection"],
                    "c.d",
                    MARIA_ODD_COLUMN,
                    lambda: maria_snapshot(ours),
                )
            finally:
                with admin.connect() as conn:
                    conn.exec_driver_sql("DROP USER IF EXISTS %s@'%%'", (user,))
                admin.dispose()


def listed(schemas: list[dict[str, Any]]) -> dict[str, list[str]]:
    """schema -> sorted table names, from the cache's or the live listing's shape."""
    return {s["name"]: sorted(t if isinstance(t, str) else t["name"] for t in s["tables"]) for s in schemas}


async def train(
    http: httpx.AsyncClient, settings: Settings, cid: str, body: dict[str, Any]
) -> dict[str, Any]:
    queued = await http.post(f"/api/connections/{cid}/train-schema", json=body, headers=auth())
    assert queued.status_code == 202, queued.text
    job_id = queued.json()["jobId"]
    assert await run_job(settings, "alice", job_id) == "job_completed"
    job: dict[str, Any] = (await http.get(f"/api/jobs/{job_id}", headers=auth())).json()
    return job


async def check_hostile_names(
    http: httpx.AsyncClient, settings: Settings, target: Target, expected: dict[str, list[str]]
) -> None:
    created = await http.post("/api/connections", json=target.connection, headers=auth())
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    live = await http.get(f"/api/connections/{cid}/schemas", headers=auth())
    assert live.status_code == 200, live.text
    assert listed(live.json()["schemas"]) == expected

    await train(http, settings, cid, {})
    cache = (await http.get(f"/api/connections/{cid}/schema-cache", headers=auth())).json()
    assert listed(cache["schemas"]) == expected
    tables = {(s["name"], t["name"]): t for s in cache["schemas"] for t in s["tables"]}
    odd = tables[(target.odd_schema, target.odd_table)]
    assert [c["name"] for c in odd["columns"]] == ["id", target.odd_column]
    (fk,) = odd["foreignKeys"]
    assert fk["name"] == "fk; DROP --"
    assert (fk["referredSchema"], fk["referredTable"]) in tables

    # Names it lacks, shaped as injections and wildcards, are missing; what it has is matched exactly.
    wild = ["%", "_", "' OR '1'='1", 'x") OR 1=1 --', target.odd_table.upper()]
    job = await train(
        http,
        settings,
        cid,
        {"schemas": ["%", "' OR 1=1 --"], "tables": {target.odd_schema: [target.odd_table, *wild]}},
    )
    assert job["result"]["missing"] == {
        "schemas": ["%", "' OR 1=1 --"],
        "tables": {target.odd_schema: wild},
    }
    again = (await http.get(f"/api/connections/{cid}/schema-cache", headers=auth())).json()
    assert again["version"] == 2 and listed(again["schemas"]) == expected


@pytest.mark.parametrize("server", ["pg_names", "maria_names"])
async def test_hostile_names_read_back_exactly_and_touch_nothing(
    http: httpx.AsyncClient, settings: Settings, request: pytest.FixtureRequest, server: str
) -> None:
    target: Target = request.getfixturevalue(server)
    before = target.snapshot()
    assert before["sentinel"] == SENTINEL_ROWS
    await check_hostile_names(http, settings, target, {k: sorted(v) for k, v in target.names.items()})
    assert target.snapshot() == before
