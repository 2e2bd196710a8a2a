"""Schema training against a real MariaDB (a schema is a database), checked against information_schema."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import TextClause, bindparam, text

from explorer_jobs.connections import service
from explorer_jobs.errors import PermanentJobError
from explorer_jobs.settings import Settings
from explorer_jobs.store.schema_caches import latest_schema_cache
from explorer_jobs.training.payload import SchemaTrainingPayload
from explorer_jobs.training.processor import train_schema
from tests.support.databases import MYSQL_ADMIN_URL, admin_engine
from tests.support.training_targets import CANARY, MySQLTarget, add_mysql_connection, make_context

COLUMNS = """
SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE = 'YES'
FROM information_schema.COLUMNS WHERE TABLE_SCHEMA IN :schemas
ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION
"""
KEYS = """
SELECT k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, t.CONSTRAINT_TYPE, k.COLUMN_NAME,
       k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME,
       r.DELETE_RULE, r.UPDATE_RULE
FROM information_schema.KEY_COLUMN_USAGE k
JOIN information_schema.TABLE_CONSTRAINTS t ON t.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA
  AND t.TABLE_NAME = k.TABLE_NAME AND t.CONSTRAINT_NAME = k.CONSTRAINT_NAME
LEFT JOIN information_schema.REFERENTIAL_CONSTRAINTS r ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA
  AND r.TABLE_NAME = k.TABLE_NAME AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME
WHERE k.TABLE_SCHEMA IN :schemas ORDER BY k.TABLE_SCHEMA, k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION
"""
CHECKS = """
SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME FROM information_schema.CHECK_CONSTRAINTS
WHERE CONSTRAINT_SCHEMA IN :schemas AND LEVEL = 'Table'
"""
INDEXES = """
SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, NON_UNIQUE = 0, COLUMN_NAME FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA IN :schemas AND INDEX_NAME <> 'PRIMARY'
ORDER BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX
"""
# MySQL's default referential action is RESTRICT (the same as NO ACTION); SQLAlchemy leaves it out.
RULES = {"RESTRICT": None, "NO ACTION": None, "CASCADE": "CASCADE", "SET NULL": "SET NULL"}


def _expanding(sql: str) -> TextClause:
    return text(sql).bindparams(bindparam("schemas", expanding=True))


def norm_type(name: str) -> str:
    name = re.sub(r" (CHARACTER SET|COLLATE) \w+", "", name, flags=re.IGNORECASE).lower()
    return name.replace("integer", "int").replace(" ", "")


def catalog_view(schemas: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """What information_schema says, in the cache's shape, normalised."""
    tables: dict[tuple[str, str], dict[str, Any]] = {}

    def table(schema: str, name: str) -> dict[str, Any]:
        return tables.setdefault(
            (schema, name),
            {"columns": [], "primaryKey": None, "uniques": {}, "checks": [], "indexes": {}, "fks": {}},
        )

    engine = admin_engine(MYSQL_ADMIN_URL)
    bind = {"schemas": schemas}
    with engine.connect() as conn:
        for schema, name, column, type_, nullable in conn.execute(_expanding(COLUMNS), bind):
            table(schema, name)["columns"].append((column, norm_type(type_), bool(nullable)))
        for schema, name, con, kind, column, rschema, rtable, rcolumn, on_delete, on_update in conn.execute(
            _expanding(KEYS), bind
        ):
            entry = table(schema, name)
            if kind == "PRIMARY KEY":
                entry["primaryKey"] = entry["primaryKey"] or {"name": "PRIMARY", "columns": []}
                entry["primaryKey"]["columns"].append(column)
            elif kind == "UNIQUE":
                entry["uniques"].setdefault(con, {"name": con, "columns": []})["columns"].append(column)
            elif kind == "FOREIGN KEY":
                fk = entry["fks"].setdefault(
                    con,
                    {
                        "name": con,
                        "columns": [],
                        "referredSchema": rschema,
                        "referredTable": rtable,
                        "referredColumns": [],
                        "onDelete": RULES[on_delete],
                        "onUpdate": RULES[on_update],
                    },
                )
                fk["columns"].append(column)
                fk["referredColumns"].append(rcolumn)
        for schema, name, con in conn.execute(_expanding(CHECKS), bind):
            table(schema, name)["checks"].append(con)
        for schema, name, index, unique, column in conn.execute(_expanding(INDEXES), bind):
            entry = table(schema, name)
            if index in entry["uniques"]:
                continue  # listed as the unique constraint
            entry["indexes"].setdefault(index, {"name": index, "columns": [], "unique": bool(unique)})[
                "columns"
            ].append(column)
    engine.dispose()
    return {
        key: {
            "columns": value["columns"],
            "primaryKey": value["primaryKey"],
            "uniques": sorted(value["uniques"].values(), key=lambda u: u["name"]),
            "checks": sorted(value["checks"]),
            "indexes": sorted(value["indexes"].values(), key=lambda i: i["name"]),
            "fks": sorted(value["fks"].values(), key=lambda f: f["name"]),
        }
        for key, value in tables.items()
    }


def cache_view(schemas: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (schema["name"], table["name"]): {
            "columns": [(c["name"], norm_type(c["type"]), c["nullable"]) for c in table["columns"]],
            "primaryKey": table["primaryKey"],
            "uniques": table["uniqueConstraints"],
            "checks": [c["name"] for c in table["checkConstraints"]],
            "indexes": table["indexes"],
            "fks": table["foreignKeys"],
        }
        for schema in schemas
        for table in schema["tables"]
    }


async def test_every_database_the_user_sees_is_trained_as_a_schema(
    isolated_store: Settings, mysql_target: MySQLTarget
) -> None:
    connection_id = add_mysql_connection("alice", mysql_target)
    ctx, _ = make_context("alice")
    result = await train_schema(ctx, SchemaTrainingPayload(connection_id=connection_id))
    cache = service.get_schema_cache("alice", connection_id)
    # The user was granted these two only: no information_schema, mysql, sys, nor other tests' databases.
    assert [s["name"] for s in cache["schemas"]] == sorted(mysql_target.databases)
    assert cache_view(cache["schemas"]) == catalog_view(mysql_target.databases)
    assert result["counts"] == {"schemas": 2, "tables": 3, "columns": 12}


async def test_mariadb_shapes(isolated_store: Settings, mysql_target: MySQLTarget) -> None:
    a, b = mysql_target.databases
    connection_id = add_mysql_connection("alice", mysql_target)
    ctx, _ = make_context("alice")
    await train_schema(ctx, SchemaTrainingPayload(connection_id=connection_id))
    tables = {
        (s["name"], t["name"]): t
        for s in service.get_schema_cache("alice", connection_id)["schemas"]
        for t in s["tables"]
    }
    users = tables[(a, "users")]
    assert [c["type"] for c in users["columns"]][:3] == [
        "INTEGER(11)",
        "VARCHAR(255)",
        "ENUM('sad','ok','happy')",
    ]
    assert users["columns"][5] == {
        "name": "total",
        "type": "DECIMAL(10, 2)",
        "nullable": False,
        "default": "0.00",
    }
    assert users["foreignKeys"][0]["referredSchema"] == a  # self-reference, same database
    quoted = tables[(b, 'It\'s "Quoted"')]
    assert quoted["foreignKeys"][0]["referredSchema"] == a
    assert quoted["foreignKeys"][0]["referredTable"] == "Order Lines"
    assert tables[(a, "Order Lines")]["primaryKey"] == {"name": "PRIMARY", "columns": ["order_id", "line_no"]}


async def test_selective_training_and_missing_names(
    isolated_store: Settings, mysql_target: MySQLTarget
) -> None:
    a = mysql_target.databases[0]
    connection_id = add_mysql_connection("alice", mysql_target)
    ctx, _ = make_context("alice")
    result = await train_schema(
        ctx,
        SchemaTrainingPayload(
            connection_id=connection_id, schemas=["mysql"], tables={a: ["Order Lines", "ORDER LINES"]}
        ),
    )
    # A system database is not trained even when asked for; names match exactly.
    assert result["missing"] == {"schemas": ["mysql"], "tables": {a: ["ORDER LINES"]}}
    cache = service.get_schema_cache("alice", connection_id)
    assert [(s["name"], [t["name"] for t in s["tables"]]) for s in cache["schemas"]] == [(a, ["Order Lines"])]


async def test_bad_credentials_fail_permanently_with_a_readable_message(
    isolated_store: Settings, mysql_target: MySQLTarget, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    wrong = CANARY + "-wrong"
    connection_id = add_mysql_connection("alice", mysql_target, password=wrong)
    ctx, _ = make_context("alice")
    with pytest.raises(PermanentJobError) as raised:
        await train_schema(ctx, SchemaTrainingPayload(connection_id=connection_id))
    message = str(raised.value)
    assert "Access denied for user" in message and "127.0.0.1:3306" in message
    assert CANARY not in message and CANARY not in caplog.text
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert latest_schema_cache(connection_id) is None


async def test_the_password_never_leaks(
    isolated_store: Settings, mysql_target: MySQLTarget, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    connection_id = add_mysql_connection("alice", mysql_target)
    payload = SchemaTrainingPayload(connection_id=connection_id)
    ctx, log = make_context("alice")
    result = await train_schema(ctx, payload)
    assert result["counts"]["tables"] == 3  # the canary password did log in
    seen = json.dumps(
        [
            result,
            payload.model_dump(mode="json"),
            log.progress,
            service.get_schema_cache("alice", connection_id),
        ]
    )
    assert CANARY not in seen and CANARY not in caplog.text
