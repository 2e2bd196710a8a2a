"""The general reader: SQLAlchemy's inspector and its multi-table calls, one batch of tables at a time.

Used where no catalog reader applies (SQLite, MySQL proper, old servers). Its output is the
reference the catalog readers are tested against. On PostgreSQL each call is one query per batch;
on MySQL each table costs a `SHOW CREATE TABLE` (cached across the kinds of metadata).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.reflection import Inspector
from sqlalchemy.exc import CompileError
from sqlalchemy.types import NullType

from explorer_jobs.training.entries import Item, Table, column_entry, table_entry
from explorer_jobs.training.payload import TrainingOptions

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


def reflect_tables(
    connection: Connection, inspector: Inspector, schema: str, names: list[str], options: TrainingOptions
) -> dict[str, Table]:
    """The cache entries of `names` in `schema`, by name; tables dropped meanwhile are left out
    (when columns are read: without them a vanished table cannot be told from an empty one)."""
    parts = _reflect(inspector, schema, names, options)
    columns = parts["columns"]
    type_names = _unknown_type_names(connection, schema, columns) if options.include_types else {}
    default_schema = inspector.default_schema_name or schema
    dialect = connection.dialect
    entries = {}
    for name in names:
        if options.include_columns and name not in columns:
            continue
        uniques = parts["uniques"].get(name, [])
        entries[name] = table_entry(
            name,
            columns=[_column(c, dialect, options, type_names.get(name, {})) for c in columns.get(name, [])],
            primary_key=_primary_key(parts["pks"].get(name), dialect.name),
            unique_constraints=({"name": u["name"], "columns": list(u["column_names"])} for u in uniques),
            check_constraints=(
                {"name": c["name"], "sqltext": str(c["sqltext"])} for c in parts["checks"].get(name, [])
            ),
            indexes=_indexes(parts["indexes"].get(name, []), uniques, options),
            foreign_keys=(_foreign_key(fk, default_schema) for fk in parts["fks"].get(name, [])),
        )
    return entries


def type_name(type_: Any, dialect: Dialect) -> str | None:
    """SQLAlchemy's DDL name for a reflected type; None for a type it did not recognise."""
    if isinstance(type_, NullType):
        return None
    try:
        return str(type_.compile(dialect=dialect))
    except (CompileError, NotImplementedError):
        return None


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
) -> Item:
    return column_entry(
        col["name"],
        type_name(col["type"], dialect) or type_names.get(col["name"]),
        bool(col["nullable"]),
        col.get("default"),
        with_type=options.include_types,
    )


def _unknown_type_names(
    connection: Connection, schema: str, columns: Mapping[str, list[Any]]
) -> dict[str, dict[str, str]]:
    """The catalog's own type name for each column SQLAlchemy could not name, by table and column."""
    query = _TYPE_QUERIES.get(connection.dialect.name)
    tables = sorted(
        name
        for name, cols in columns.items()
        if any(type_name(c["type"], connection.dialect) is None for c in cols)
    )
    if query is None or not tables:
        return {}
    found: dict[str, dict[str, str]] = {}
    for table, column, catalog_name in connection.execute(query, {"schema": schema, "tables": tables}):
        found.setdefault(table, {})[column] = catalog_name
    return found


def _primary_key(pk: Mapping[str, Any] | None, dialect: str) -> Item | None:
    if not pk or not pk.get("constrained_columns"):
        return None
    # MySQL names every primary key PRIMARY; SQLAlchemy reports no name for it.
    name = pk.get("name") or ("PRIMARY" if dialect == "mysql" else None)
    return {"name": name, "columns": list(pk["constrained_columns"])}


def _foreign_key(fk: Mapping[str, Any], default_schema: str) -> Item:
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
) -> list[Item]:
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
    return out


def _by_table(result: Mapping[tuple[str | None, str], Any]) -> dict[str, Any]:
    # Each call covers one schema, so the table name alone is the key.
    return {table: value for (_schema, table), value in result.items()}
