"""PostgreSQL: a batch of tables read from pg_catalog in one query, the server building the JSON.

Why not the inspector here: its multi-table calls cost 7 queries a batch, but their rows (one per
column, constraint and index element) are decoded by pg8000 and parsed again by SQLAlchemy in
Python, which made a training of 1,000 tables ~2.7x as slow as `pg_dump --schema-only`. Here each
table comes back as one row whose metadata the server has already aggregated into JSON, which the
driver decodes with `json.loads` (C). Type names still come from SQLAlchemy (see pg_types).

The entries are what the inspector path produces (tests compare the two on an awkward schema),
but for two details: a referred table's schema is the catalog's, not a guess from the search path
(the inspector says "public" for any table the search path finds), and `ON DELETE SET NULL (a)`
(PostgreSQL 15) is `SET NULL`, the action, as SQLAlchemy 2.0 reports it (2.1 keeps the columns).
Needs PostgreSQL 12 (generated columns); older servers use the inspector.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, TextClause, text
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.reflection import Inspector

from explorer_jobs.training.entries import Item, Table, column_entry, table_entry
from explorer_jobs.training.payload import TrainingOptions
from explorer_jobs.training.pg_types import PgTypeNames, type_key

MIN_SERVER_VERSION = (12,)

_COLUMNS = """(
  SELECT json_agg(json_build_object(
    'name', a.attname,
    'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
    'notNull', a.attnotnull,
    'default', CASE WHEN a.atthasdef THEN (
      SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid) FROM pg_catalog.pg_attrdef d
      WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum) END,
    'generated', a.attgenerated <> '',
    'collation', CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN (
      SELECT json_build_array(co.collname,
        CASE WHEN NOT pg_catalog.pg_collation_is_visible(co.oid) THEN cn.nspname END)
      FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
      WHERE co.oid = a.attcollation) END
  ) ORDER BY a.attnum)
  FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)"""

# Primary keys, unique and check constraints, foreign keys; columns in key order.
_CONSTRAINTS = """(
  SELECT json_agg(json_build_object(
    'name', k.conname,
    'kind', k.contype,
    'columns', (SELECT json_agg(a.attname ORDER BY u.i)
      FROM unnest(k.conkey) WITH ORDINALITY u(num, i)
      JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.num),
    'check', CASE WHEN k.contype = 'c' THEN pg_catalog.pg_get_expr(k.conbin, k.conrelid, true) END,
    'referredSchema', rn.nspname,
    'referredTable', rc.relname,
    'referredColumns', (SELECT json_agg(a.attname ORDER BY u.i)
      FROM unnest(k.confkey) WITH ORDINALITY u(num, i)
      JOIN pg_catalog.pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.num),
    'onDelete', k.confdeltype,
    'onUpdate', k.confupdtype))
  FROM pg_catalog.pg_constraint k
  LEFT JOIN pg_catalog.pg_class rc ON rc.oid = k.confrelid
  LEFT JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
  WHERE k.conrelid = c.oid AND k.contype IN ('p', 'u', 'c', 'f'))"""

# Indexes other than the primary key's; key columns only (not INCLUDE ones), an expression as its
# text. `constraint`: the index is a unique or exclusion constraint's own.
_INDEXES = """(
  SELECT json_agg(json_build_object(
    'name', i.relname,
    'unique', x.indisunique,
    'constraint', EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
      WHERE k.conrelid = x.indrelid AND k.conindid = x.indexrelid AND k.contype IN ('p', 'u', 'x')),
    'columns', (SELECT json_agg(CASE WHEN u.num = 0
        THEN pg_catalog.pg_get_indexdef(x.indexrelid, u.i::int, true) ELSE a.attname::text END
        ORDER BY u.i)
      FROM unnest(x.indkey) WITH ORDINALITY u(num, i)
      LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = u.num
      WHERE u.i <= x.indnkeyatts)))
  FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
  WHERE x.indrelid = c.oid AND NOT x.indisprimary)"""

_QUERY = """SELECT c.relname, {columns} AS columns, {constraints} AS constraints, {indexes} AS indexes
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = :schema AND c.relname = ANY(CAST(:names AS name[])) AND c.relkind IN ('r', 'p')"""

_FK_ACTIONS = {"a": None, "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
# A serial's default names its sequence unqualified when the search path finds it.
_NEXTVAL = re.compile(r"(nextval\(')([^']+)('.*$)")


def supports(dialect: Dialect) -> bool:
    """Whether this reader can read the database `dialect` is connected to."""
    version = dialect.server_version_info or ()
    return dialect.name == "postgresql" and tuple(version) >= MIN_SERVER_VERSION


def read_tables(
    connection: Connection,
    inspector: Inspector,
    schema: str,
    names: list[str],
    options: TrainingOptions,
    types: PgTypeNames,
) -> dict[str, Table]:
    """The cache entries of those of `names` that `schema` still has, by name."""
    rows = connection.execute(_query(options), {"schema": schema, "names": names}).all()
    if options.include_columns and options.include_types:
        types.learn(inspector, schema, {row[0]: row[1] or [] for row in rows})
    return {
        name: _table(name, schema, columns or [], constraints or [], indexes or [], options, types)
        for name, columns, constraints, indexes in rows
    }


def _query(options: TrainingOptions) -> TextClause:
    # Only fixed fragments are spliced in; the schema and the names are bound parameters.
    wants_constraints = options.include_constraints or options.include_foreign_keys
    return text(
        _QUERY.format(
            columns=_COLUMNS if options.include_columns else "NULL",
            constraints=_CONSTRAINTS if wants_constraints else "NULL",
            indexes=_INDEXES if options.include_indexes else "NULL",
        )
    )


def _table(
    name: str,
    schema: str,
    columns: list[Mapping[str, Any]],
    constraints: list[Mapping[str, Any]],
    indexes: list[Mapping[str, Any]],
    options: TrainingOptions,
    types: PgTypeNames,
) -> Table:
    kinds: dict[str, list[Mapping[str, Any]]] = {}
    for constraint in constraints:
        kinds.setdefault(constraint["kind"], []).append(constraint)
    keys = options.include_constraints
    primary = kinds.get("p", []) if keys else []
    return table_entry(
        name,
        columns=[_column(column, schema, types, options.include_types) for column in columns],
        primary_key={"name": primary[0]["name"], "columns": primary[0]["columns"]} if primary else None,
        unique_constraints=({"name": u["name"], "columns": u["columns"]} for u in kinds.get("u", []) if keys),
        check_constraints=({"name": c["name"], "sqltext": c["check"]} for c in kinds.get("c", []) if keys),
        indexes=(
            {"name": i["name"], "columns": i["columns"], "unique": i["unique"]}
            for i in indexes
            # A constraint's own index is listed as the constraint when constraints are read.
            if not (keys and i["constraint"])
        ),
        foreign_keys=(_foreign_key(fk) for fk in kinds.get("f", []) if options.include_foreign_keys),
    )


def _column(column: Mapping[str, Any], schema: str, types: PgTypeNames, with_type: bool) -> Item:
    if not with_type:
        return column_entry(column["name"], None, False, None, with_type=False)
    info = types.info(type_key(column))
    nullable, default = not column["notNull"], column["default"]
    # A domain's NOT NULL and default apply to its columns (as SQLAlchemy reports them).
    if not default and info.domain_default is not None:
        default = info.domain_default
    nullable = nullable and not info.domain_not_null
    if column["generated"]:
        default = None  # the generation expression, not a default
    return column_entry(column["name"], info.name, nullable, _qualified_sequence(default, schema), True)


def _qualified_sequence(default: str | None, schema: str) -> str | None:
    # SQLAlchemy qualifies an unqualified sequence with the schema read; caches written through it
    # say `nextval('"public".users_id_seq'::regclass)`, so this reader says the same.
    match = _NEXTVAL.search(default) if default else None
    if match is None or "." in match.group(2):
        return default
    return f'{match.group(1)}"{schema}".{match.group(2)}{match.group(3)}'


def _foreign_key(fk: Mapping[str, Any]) -> Item:
    return {
        "name": fk["name"],
        "columns": fk["columns"],
        "referredSchema": fk["referredSchema"],
        "referredTable": fk["referredTable"],
        "referredColumns": fk["referredColumns"],
        "onDelete": _FK_ACTIONS.get(fk["onDelete"]),
        "onUpdate": _FK_ACTIONS.get(fk["onUpdate"]),
    }
