"""Read a target's schema with SQLAlchemy's multi-table reflection, one batch of tables at a time.

Each batch costs one query per kind of metadata (columns, keys, indexes, ...) on PostgreSQL, however
many tables it holds. (MySQL has no multi-table reflection in SQLAlchemy: it reads one
`SHOW CREATE TABLE` per table, cached across the kinds, which is also what `mysqldump` does.)
Requested names are matched against what the database lists; only listed names reach a query,
and as bound parameters or identifiers SQLAlchemy quotes, never pasted into SQL.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.reflection import Inspector
from sqlalchemy.exc import CompileError
from sqlalchemy.types import NullType

from explorer_jobs.connections.catalog import table_names, user_schemas
from explorer_jobs.training.payload import TrainingOptions

# Batches: at least MIN tables (fewer queries), at most MAX (bounded work between cancel checks),
# and about TARGET_BATCHES of them for a large database (progress moves in visible steps).
MIN_BATCH_TABLES = 50
MAX_BATCH_TABLES = 500
TARGET_BATCHES = 10

Table = dict[str, Any]

_TYPE_QUERIES = {
    # Asked only for columns SQLAlchemy does not recognise (point, xml, PostGIS, composites...).
    "postgresql": text(
        "SELECT c.relname, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod) "
        "FROM pg_catalog.pg_attribute a "
        "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = :schema AND c.relname IN :tables AND a.attnum > 0 AND NOT a.attisdropped"
    ).bindparams(bindparam("tables", expanding=True)),
    "mysql": text(
        "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = :schema AND TABLE_NAME IN :tables"
    ).bindparams(bindparam("tables", expanding=True)),
}


@dataclass(frozen=True, slots=True)
class TrainingPlan:
    """Which tables a training reads, and which requested names the database does not have."""

    tables: dict[str, list[str]]
    whole_schemas: frozenset[str]
    all_schemas: bool
    available_schemas: frozenset[str]
    missing_schemas: list[str] = field(default_factory=list)
    missing_tables: dict[str, list[str]] = field(default_factory=dict)

    @property
    def total_tables(self) -> int:
        return sum(len(names) for names in self.tables.values())

    def missing(self) -> dict[str, Any]:
        """The names requested but not found, as the job result lists them."""
        return {
            "schemas": list(self.missing_schemas),
            "tables": {k: list(v) for k, v in self.missing_tables.items()},
        }


def plan_training(
    inspector: Inspector, schemas: list[str] | None, tables: Mapping[str, list[str]] | None
) -> TrainingPlan:
    """Match the requested schemas and tables against the database's own listing.

    No `schemas` means every user schema; a schema named in `tables` is read for those tables only.
    """
    available = user_schemas(inspector)
    restricted = dict(tables or {})
    wanted = _unique([*(available if schemas is None else schemas), *restricted])
    plan_tables: dict[str, list[str]] = {}
    missing_schemas: list[str] = []
    missing_tables: dict[str, list[str]] = {}
    for schema in wanted:
        if schema not in available:
            missing_schemas.append(schema)
            continue
        listed = table_names(inspector, schema)
        if schema not in restricted:
            plan_tables[schema] = listed
            continue
        present = set(listed)
        requested = _unique(restricted[schema])
        plan_tables[schema] = [name for name in requested if name in present]
        absent = [name for name in requested if name not in present]
        if absent:
            missing_tables[schema] = absent
    return TrainingPlan(
        tables=plan_tables,
        whole_schemas=frozenset(s for s in plan_tables if s not in restricted),
        all_schemas=schemas is None,
        available_schemas=frozenset(available),
        missing_schemas=missing_schemas,
        missing_tables=missing_tables,
    )


def batch_size_for(total_tables: int) -> int:
    """How many tables one batch reads."""
    return max(MIN_BATCH_TABLES, min(MAX_BATCH_TABLES, math.ceil(total_tables / TARGET_BATCHES)))


def batches(plan: TrainingPlan) -> list[tuple[str, list[str]]]:
    """(schema, table names) in reading order; a batch never spans two schemas (reflection is per schema)."""
    size = batch_size_for(plan.total_tables)
    return [
        (schema, names[start : start + size])
        for schema, names in plan.tables.items()
        for start in range(0, len(names), size)
    ]


def read_tables(
    connection: Connection, inspector: Inspector, schema: str, names: list[str], options: TrainingOptions
) -> list[Table]:
    """The cache entries of `names` in `schema`, in that order; tables dropped meanwhile are left out."""
    parts = _reflect(inspector, schema, names, options)
    columns = parts["columns"]
    type_names = _unknown_type_names(connection, schema, columns) if options.include_types else {}
    default_schema = inspector.default_schema_name or schema
    dialect = connection.dialect
    entries = []
    for name in names:
        if options.include_columns and name not in columns:
            continue  # dropped between listing and reading
        uniques = parts["uniques"].get(name, [])
        entries.append(
            {
                "name": name,
                "columns": [
                    _column(c, dialect, options, type_names.get(name, {})) for c in columns.get(name, [])
                ],
                "primaryKey": _primary_key(parts["pks"].get(name), dialect.name),
                "uniqueConstraints": _named(
                    {"name": u["name"], "columns": list(u["column_names"])} for u in uniques
                ),
                "checkConstraints": _named(
                    {"name": c["name"], "sqltext": str(c["sqltext"])} for c in parts["checks"].get(name, [])
                ),
                "indexes": _indexes(parts["indexes"].get(name, []), uniques, options),
                "foreignKeys": _named(_foreign_key(fk, default_schema) for fk in parts["fks"].get(name, [])),
            }
        )
    return entries


def _reflect(
    inspector: Inspector, schema: str, names: list[str], options: TrainingOptions
) -> dict[str, dict[str, Any]]:
    """One multi-table call per kind the options ask for; a kind not asked for is empty."""
    kw: dict[str, Any] = {"schema": schema, "filter_names": names}
    calls: dict[str, tuple[bool, Callable[..., Mapping[tuple[str | None, str], Any]]]] = {
        "columns": (options.include_columns, inspector.get_multi_columns),
        "pks": (options.include_constraints, inspector.get_multi_pk_constraint),
        "uniques": (options.include_constraints, inspector.get_multi_unique_constraints),
        "checks": (options.include_constraints, inspector.get_multi_check_constraints),
        "indexes": (options.include_indexes, inspector.get_multi_indexes),
        "fks": (options.include_foreign_keys, inspector.get_multi_foreign_keys),
    }
    return {part: _by_table(call(**kw)) if wanted else {} for part, (wanted, call) in calls.items()}


def _column(
    col: Mapping[str, Any], dialect: Dialect, options: TrainingOptions, type_names: Mapping[str, str]
) -> dict[str, Any]:
    if not options.include_types:
        return {"name": col["name"]}
    return {
        "name": col["name"],
        "type": _type_name(col["type"], dialect) or type_names.get(col["name"]),
        "nullable": bool(col["nullable"]),
        "default": None if col.get("default") is None else str(col["default"]),
    }


def _type_name(type_: Any, dialect: Dialect) -> str | None:
    if isinstance(type_, NullType):
        return None
    try:
        return str(type_.compile(dialect=dialect))
    except (CompileError, NotImplementedError):
        return None


def _unknown_type_names(
    connection: Connection, schema: str, columns: Mapping[str, list[Any]]
) -> dict[str, dict[str, str]]:
    """The catalog's own type name for each column SQLAlchemy could not name, by table and column."""
    query = _TYPE_QUERIES.get(connection.dialect.name)
    tables = sorted(
        name
        for name, cols in columns.items()
        if any(_type_name(c["type"], connection.dialect) is None for c in cols)
    )
    if query is None or not tables:
        return {}
    found: dict[str, dict[str, str]] = {}
    for table, column, type_name in connection.execute(query, {"schema": schema, "tables": tables}):
        found.setdefault(table, {})[column] = type_name
    return found


def _primary_key(pk: Mapping[str, Any] | None, dialect: str) -> dict[str, Any] | None:
    if not pk or not pk.get("constrained_columns"):
        return None
    # MySQL names every primary key PRIMARY; SQLAlchemy reports no name for it.
    name = pk.get("name") or ("PRIMARY" if dialect == "mysql" else None)
    return {"name": name, "columns": list(pk["constrained_columns"])}


def _foreign_key(fk: Mapping[str, Any], default_schema: str) -> dict[str, Any]:
    options = fk.get("options") or {}
    return {
        "name": fk.get("name"),
        "columns": list(fk["constrained_columns"]),
        # SQLAlchemy leaves the schema out when the search path finds the table: that is the default one.
        "referredSchema": fk.get("referred_schema") or default_schema,
        "referredTable": fk["referred_table"],
        "referredColumns": list(fk["referred_columns"]),
        "onDelete": options.get("ondelete"),
        "onUpdate": options.get("onupdate"),
    }


def _indexes(
    indexes: list[Mapping[str, Any]], uniques: list[Mapping[str, Any]], options: TrainingOptions
) -> list[dict[str, Any]]:
    # A unique constraint's own index is listed once, as the constraint, when constraints are read
    # (PostgreSQL marks it on the index, MySQL on the constraint).
    backing = {u.get("duplicates_index") for u in uniques} - {None}
    out = []
    for index in indexes:
        if options.include_constraints and (index.get("duplicates_constraint") or index["name"] in backing):
            continue
        expressions = index.get("expressions")
        names = list(index["column_names"])
        columns = (
            [expr if col is None else col for col, expr in zip(names, expressions, strict=False)]
            if expressions
            else names
        )
        out.append({"name": index["name"], "columns": columns, "unique": bool(index["unique"])})
    return _named(out)


def _named(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: (item["name"] is None, item["name"] or ""))


def _by_table(result: Mapping[tuple[str | None, str], Any]) -> dict[str, Any]:
    # Each call covers one schema, so the table name alone is the key.
    return {table: value for (_schema, table), value in result.items()}


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))
