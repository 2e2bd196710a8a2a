"""Schema training against a real PostgreSQL, checked against what pg_catalog says."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from explorer_jobs import context
from explorer_jobs.connections import service
from explorer_jobs.errors import JobCancelled, PermanentJobError
from explorer_jobs.settings import Settings
from explorer_jobs.store.schema_caches import latest_schema_cache
from explorer_jobs.training import introspect
from explorer_jobs.training.payload import SchemaTrainingPayload
from explorer_jobs.training.processor import train_schema
from tests.support.databases import run_sql, target_sessions, throwaway_pg_database
from tests.support.training_targets import CANARY, add_pg_connection, make_context

USER_SCHEMAS = ["Odd Schema", "public", "sales"]
ODD_TABLE = 'it\'s a "table"'

CATALOG_COLUMNS = """
SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
  AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
ORDER BY n.nspname, c.relname, a.attnum
"""

CATALOG_CONSTRAINTS = """
SELECT n.nspname, c.relname, k.conname, k.contype,
       ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(num, i)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.num ORDER BY u.i),
       rn.nspname, rc.relname,
       ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(num, i)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.num ORDER BY u.i),
       k.confdeltype, k.confupdtype
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class rc ON rc.oid = k.confrelid
LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
"""

CATALOG_INDEXES = """
SELECT n.nspname, t.relname, i.relname, x.indisunique,
       ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, true)
             FROM generate_series(1, x.indnkeyatts) k ORDER BY k)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid AND k.contype IN ('p', 'u'))
  AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
"""

FK_ACTIONS = {"a": None, "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


def norm_type(name: str) -> str:
    return name.lower().replace("character varying", "varchar").replace(" ", "")


def norm_default(value: str | None) -> str | None:
    # SQLAlchemy qualifies a serial's sequence with the schema it was asked about.
    return None if value is None else value.replace('"public".', "").replace("public.", "")


def catalog_view(url: URL) -> dict[tuple[str, str], dict[str, Any]]:
    """The fixture database as pg_catalog describes it, in the cache's shape (normalised)."""
    tables: dict[tuple[str, str], dict[str, Any]] = {}

    def table(schema: str, name: str) -> dict[str, Any]:
        return tables.setdefault(
            (schema, name),
            {"columns": [], "primaryKey": None, "uniques": [], "checks": [], "indexes": [], "fks": []},
        )

    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as conn:
        for schema, name, column, type_, nullable, default in conn.execute(text(CATALOG_COLUMNS)):
            table(schema, name)["columns"].append((column, norm_type(type_), nullable, norm_default(default)))
        for schema, name, con, kind, cols, rschema, rtable, rcols, on_delete, on_update in conn.execute(
            text(CATALOG_CONSTRAINTS)
        ):
            entry = table(schema, name)
            if kind == "p":
                entry["primaryKey"] = {"name": con, "columns": cols}
            elif kind == "u":
                entry["uniques"].append({"name": con, "columns": cols})
            elif kind == "c":
                entry["checks"].append(con)
            elif kind == "f":
                entry["fks"].append(
                    {
                        "name": con,
                        "columns": cols,
                        "referredSchema": rschema,
                        "referredTable": rtable,
                        "referredColumns": rcols,
                        "onDelete": FK_ACTIONS[on_delete],
                        "onUpdate": FK_ACTIONS[on_update],
                    }
                )
        for schema, name, index, unique, columns in conn.execute(text(CATALOG_INDEXES)):
            table(schema, name)["indexes"].append({"name": index, "columns": columns, "unique": unique})
    engine.dispose()
    for entry in tables.values():
        for key in ("uniques", "indexes", "fks"):
            entry[key].sort(key=lambda item: item["name"])
        entry["checks"].sort()
    return tables


def cache_view(schemas: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (schema["name"], table["name"]): {
            "columns": [
                (c["name"], norm_type(c["type"]), c["nullable"], norm_default(c["default"]))
                for c in table["columns"]
            ],
            "primaryKey": table["primaryKey"],
            "uniques": table["uniqueConstraints"],
            "checks": [c["name"] for c in table["checkConstraints"]],
            "indexes": table["indexes"],
            "fks": table["foreignKeys"],
        }
        for schema in schemas
        for table in schema["tables"]
    }


async def train(user_id: str, **payload: Any) -> dict[str, Any]:
    ctx, _ = make_context(user_id)
    result = await train_schema(ctx, SchemaTrainingPayload.model_validate(payload))
    assert isinstance(result, dict)
    return result


async def test_full_training_matches_the_catalog(isolated_store: Settings, pg_target: URL) -> None:
    connection_id = add_pg_connection("alice", pg_target)
    ctx, log = make_context("alice")
    result = await train_schema(ctx, SchemaTrainingPayload(connection_id=connection_id))

    cache = service.get_schema_cache("alice", connection_id)
    assert [s["name"] for s in cache["schemas"]] == USER_SCHEMAS  # no pg_*, no information_schema
    assert cache_view(cache["schemas"]) == catalog_view(pg_target)
    # The view is not a table; the option defaults are recorded.
    assert "user_emails" not in [t["name"] for s in cache["schemas"] for t in s["tables"]]
    assert cache["options"] == {
        "includeColumns": True,
        "includeTypes": True,
        "includeConstraints": True,
        "includeIndexes": True,
        "includeForeignKeys": True,
    }
    assert (cache["version"], cache["jobId"], cache["connectionId"]) == (1, ctx.job_id, connection_id)
    assert result["counts"] == {"schemas": 3, "tables": 5, "columns": 20}
    assert result["missing"] == {"schemas": [], "tables": {}}
    assert result["changes"]["counts"] == {"tablesAdded": 5, "tablesRemoved": 0, "tablesAltered": 0}
    assert log.progress[0] == (0, "0/5 tables")
    assert service.get_connection("alice", connection_id).last_trained_at is not None


async def test_cache_shapes_as_api_md_describes(isolated_store: Settings, pg_target: URL) -> None:
    connection_id = add_pg_connection("alice", pg_target)
    await train("alice", connectionId=connection_id)
    tables = {
        (s["name"], t["name"]): t
        for s in service.get_schema_cache("alice", connection_id)["schemas"]
        for t in s["tables"]
    }
    users = tables[("public", "users")]
    assert users["columns"][3] == {"name": "tags", "type": "TEXT[]", "nullable": True, "default": None}
    assert [c["type"] for c in users["columns"][:3]] == ["INTEGER", "VARCHAR(255)", "mood"]
    assert tables[("sales", "orders")]["columns"][3]["type"] == "NUMERIC(10, 2)"
    assert tables[("sales", "orders")]["primaryKey"] == {
        "name": "orders_pkey",
        "columns": ["order_id", "line_no"],
    }
    # Cross-schema reference to the default schema: SQLAlchemy says None, the cache says "public".
    assert tables[("sales", "orders")]["foreignKeys"][0] == {
        "name": "orders_user_id_fkey",
        "columns": ["user_id"],
        "referredSchema": "public",
        "referredTable": "users",
        "referredColumns": ["id"],
        "onDelete": "CASCADE",
        "onUpdate": "RESTRICT",
    }
    assert {"name": "users_lower_email", "columns": ["lower(email::text)"], "unique": True} in users[
        "indexes"
    ]
    assert {"name": "users_with_manager", "columns": ["created_at"], "unique": False} in users["indexes"]
    assert tables[("Odd Schema", ODD_TABLE)]["primaryKey"] is None
    assert tables[("Odd Schema", ODD_TABLE)]["columns"][0]["name"] == 'Weird "Col"'


async def test_selective_training_and_missing_names(isolated_store: Settings, pg_target: URL) -> None:
    connection_id = add_pg_connection("alice", pg_target)
    result = await train(
        "alice",
        connectionId=connection_id,
        schemas=["sales", "nope"],
        tables={"public": ["users", "ghost"], "Odd Schema": [ODD_TABLE]},
    )
    assert result["missing"] == {"schemas": ["nope"], "tables": {"public": ["ghost"]}}
    cache = service.get_schema_cache("alice", connection_id)
    assert [(s["name"], [t["name"] for t in s["tables"]]) for s in cache["schemas"]] == [
        ("Odd Schema", [ODD_TABLE]),
        ("public", ["users"]),
        ("sales", ["orders", "shipments"]),
    ]
    assert result["counts"] == {"schemas": 3, "tables": 4, "columns": 18}


async def test_retraining_part_keeps_the_rest_and_the_previous_version(
    isolated_store: Settings, pg_target: URL
) -> None:
    connection_id = add_pg_connection("alice", pg_target)
    await train("alice", connectionId=connection_id)
    result = await train(
        "alice", connectionId=connection_id, schemas=["sales"], options={"includeIndexes": False}
    )
    cache = service.get_schema_cache("alice", connection_id)
    assert cache["version"] == 2 and result["previousVersion"] == 1
    assert [s["name"] for s in cache["schemas"]] == USER_SCHEMAS  # the rest is kept
    assert result["changes"]["counts"] == {"tablesAdded": 0, "tablesRemoved": 0, "tablesAltered": 1}
    assert result["changes"]["tablesAltered"] == [
        {
            "schema": "sales",
            "table": "shipments",
            "columnsAdded": [],
            "columnsRemoved": [],
            "columnsAltered": [],
            "otherChanges": ["indexes"],
        }
    ]


async def test_options_turn_parts_off(isolated_store: Settings, pg_target: URL) -> None:
    connection_id = add_pg_connection("alice", pg_target)
    off = {
        "includeTypes": False,
        "includeConstraints": False,
        "includeIndexes": False,
        "includeForeignKeys": False,
    }
    await train("alice", connectionId=connection_id, schemas=["public"], options=off)
    users = service.get_schema_cache("alice", connection_id)["schemas"][0]["tables"][1]
    assert users["name"] == "users"
    assert users["columns"][:2] == [{"name": "id"}, {"name": "email"}]
    assert (users["primaryKey"], users["uniqueConstraints"], users["checkConstraints"]) == (None, [], [])
    assert (users["indexes"], users["foreignKeys"]) == ([], [])

    await train("alice", connectionId=connection_id, schemas=["public"], options={"includeColumns": False})
    users = service.get_schema_cache("alice", connection_id)["schemas"][0]["tables"][1]
    assert users["columns"] == [] and users["primaryKey"] == {"name": "users_pkey", "columns": ["id"]}


async def test_with_constraints_off_a_unique_constraints_index_is_listed_as_an_index(
    isolated_store: Settings, pg_target: URL
) -> None:
    connection_id = add_pg_connection("alice", pg_target)
    await train(
        "alice",
        connectionId=connection_id,
        tables={"public": ["users"]},
        schemas=[],
        options={"includeConstraints": False},
    )
    users = service.get_schema_cache("alice", connection_id)["schemas"][0]["tables"][0]
    assert {"name": "users_email_key", "columns": ["email"], "unique": True} in users["indexes"]


async def test_a_changed_database_shows_in_the_next_result(isolated_store: Settings) -> None:
    with throwaway_pg_database() as url:
        run_sql(url, "CREATE TABLE a (id int PRIMARY KEY, x text); CREATE TABLE b (id int)")
        connection_id = add_pg_connection("alice", url)
        await train("alice", connectionId=connection_id)
        run_sql(
            url,
            "ALTER TABLE a ADD COLUMN y int; ALTER TABLE a ALTER COLUMN x SET NOT NULL; DROP TABLE b; "
            "CREATE TABLE c (id int)",
        )
        result = await train("alice", connectionId=connection_id)
    changes = result["changes"]
    assert changes["tablesAdded"] == [{"schema": "public", "table": "c"}]
    assert changes["tablesRemoved"] == [{"schema": "public", "table": "b"}]
    assert changes["tablesAltered"] == [
        {
            "schema": "public",
            "table": "a",
            "columnsAdded": ["y"],
            "columnsRemoved": [],
            "columnsAltered": ["x"],
            "otherChanges": [],
        }
    ]
    assert latest_schema_cache(connection_id).version == 2  # type: ignore[union-attr]


async def test_unrecognised_types_get_the_catalogs_name(isolated_store: Settings) -> None:
    with throwaway_pg_database() as url:
        run_sql(url, "CREATE TYPE pair AS (a int, b text); CREATE TABLE odd (p point, x xml, c pair, ok int)")
        connection_id = add_pg_connection("alice", url)
        with pytest.warns(Warning, match="Did not recognize type"):
            await train("alice", connectionId=connection_id)
    columns = service.get_schema_cache("alice", connection_id)["schemas"][0]["tables"][0]["columns"]
    assert [c["type"] for c in columns] == ["point", "xml", "pair", "INTEGER"]


async def test_cancel_between_batches_stops_without_saving(
    isolated_store: Settings, pg_target: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(introspect, "MIN_BATCH_TABLES", 1)  # five tables, five batches
    monkeypatch.setattr(context, "CHECKPOINT_MAX_AGE", 0.0)  # every checkpoint asks
    connection_id = add_pg_connection("alice", pg_target)
    ctx, log = make_context("alice", cancel_after=3)
    with pytest.raises(JobCancelled):
        await train_schema(ctx, SchemaTrainingPayload(connection_id=connection_id))
    assert log.cancel_reads == 3
    assert latest_schema_cache(connection_id) is None
    assert service.get_connection("alice", connection_id).last_trained_at is None
    assert target_sessions(pg_target) == 0


async def test_someone_elses_connection_is_not_found(isolated_store: Settings, pg_target: URL) -> None:
    connection_id = add_pg_connection("alice", pg_target)
    ctx, _ = make_context("mallory")
    with pytest.raises(PermanentJobError, match="connection not found"):
        await train_schema(ctx, SchemaTrainingPayload(connection_id=connection_id))
    assert latest_schema_cache(connection_id) is None


async def test_the_password_never_leaks(
    isolated_store: Settings, pg_target: URL, caplog: pytest.LogCaptureFixture
) -> None:

    caplog.set_level("DEBUG")
    connection_id = add_pg_connection("alice", pg_target)
    payload = SchemaTrainingPayload(connection_id=connection_id)
    ctx, log = make_context("alice")
    result = await train_schema(ctx, payload)
    everything = json.dumps(
        [
            result,
            payload.model_dump(mode="json", by_alias=True),
            log.progress,
            ctx.data,
            service.get_schema_cache("alice", connection_id),
            [c.model_dump(mode="json") for c in service.list_connections("alice")],
        ]
    )
    assert CANARY not in everything
    assert CANARY not in caplog.text
    assert "password" not in service.get_connection("alice", connection_id).model_dump(by_alias=True)
