"""MariaDB: a batch of tables read from information_schema, a few queries whatever the table count.

SQLAlchemy's MySQL dialect has no multi-table reflection: it reads one `SHOW CREATE TABLE` per
table, so a training cost a round trip per table. Here each kind of metadata is one query per
batch (the names bound as parameters), joined up in Python: foreign keys come from
KEY_COLUMN_USAGE and REFERENTIAL_CONSTRAINTS separately because MariaDB joins the two views ~10x
slower than it reads them.

The entries are what the inspector path produces (tests compare the two), except where its
parsing of `SHOW CREATE TABLE` loses text: a default such as `b'101'` or
`(current_timestamp() + interval 1 day)` is kept whole.
MySQL proper names some of these columns differently (unquoted string defaults, no
CHECK_CONSTRAINTS.TABLE_NAME) and is not available here to test against: it keeps the inspector,
as do MariaDB servers before 10.5.10 (no CHECK_CONSTRAINTS.LEVEL).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, TextClause, bindparam, text
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.reflection import Inspector

from explorer_jobs.training.entries import Item, Table, column_entry, table_entry
from explorer_jobs.training.mysql_types import MySQLTypeNames
from explorer_jobs.training.payload import TrainingOptions

MIN_SERVER_VERSION = (10, 5, 10)


def _query(sql: str) -> TextClause:
    return text(sql).bindparams(bindparam("names", expanding=True))


# Each selects the schema and table first: information_schema compares names without regard to
# case, so rows are matched to the batch in Python, exactly.
_TABLES = _query(
    "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES "
    "WHERE TABLE_SCHEMA = :schema AND TABLE_NAME IN :names AND TABLE_TYPE = 'BASE TABLE'"
)
_COLUMNS = _query(
    "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, "
    "CHARACTER_SET_NAME, COLLATION_NAME, EXTRA, IS_GENERATED FROM information_schema.COLUMNS "
    "WHERE TABLE_SCHEMA = :schema AND TABLE_NAME IN :names ORDER BY TABLE_NAME, ORDINAL_POSITION"
)
_INDEXES = _query(
    "SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME FROM information_schema.STATISTICS "
    "WHERE TABLE_SCHEMA = :schema AND TABLE_NAME IN :names ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"
)
_FOREIGN_KEY_COLUMNS = _query(
    "SELECT TABLE_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_SCHEMA, "
    "REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
    "WHERE TABLE_SCHEMA = :schema AND TABLE_NAME IN :names AND REFERENCED_TABLE_NAME IS NOT NULL "
    "ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION"
)
_FOREIGN_KEY_RULES = _query(
    "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, DELETE_RULE, UPDATE_RULE "
    "FROM information_schema.REFERENTIAL_CONSTRAINTS "
    "WHERE CONSTRAINT_SCHEMA = :schema AND TABLE_NAME IN :names"
)
# Table-level only: a column's inline CHECK (MariaDB's JSON columns have one) is part of the column.
_CHECKS = _query(
    "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE "
    "FROM information_schema.CHECK_CONSTRAINTS "
    "WHERE CONSTRAINT_SCHEMA = :schema AND TABLE_NAME IN :names AND LEVEL = 'Table'"
)

# RESTRICT is the default and NO ACTION the same thing in InnoDB: SQLAlchemy reports neither.
_RULES = {"CASCADE": "CASCADE", "SET NULL": "SET NULL", "SET DEFAULT": "SET DEFAULT"}
# A table's foreign keys' (ON DELETE, ON UPDATE), by constraint name.
Actions = dict[str, tuple[str | None, str | None]]
_ON_UPDATE = re.compile(r"on update (\S+)", re.IGNORECASE)
_BARE_DEFAULT = re.compile(r"[\-\w.()]+")


def supports(dialect: Dialect) -> bool:
    """Whether this reader can read the database `dialect` is connected to."""
    version = tuple(dialect.server_version_info or ())
    return (
        dialect.name == "mysql"
        and bool(getattr(dialect, "is_mariadb", False))
        and version >= MIN_SERVER_VERSION
    )


def read_tables(
    connection: Connection,
    inspector: Inspector,
    schema: str,
    names: list[str],
    options: TrainingOptions,
    types: MySQLTypeNames,
) -> dict[str, Table]:
    """The cache entries of those of `names` that `schema` still has, by name."""
    read = _Reader(connection, schema, names)
    tables = {name: found[0][2] for name, found in read(_TABLES).items()}
    columns = read(_COLUMNS) if options.include_columns else {}
    keys = read(_INDEXES) if options.include_constraints or options.include_indexes else {}
    checks = read(_CHECKS) if options.include_constraints else {}
    fk_columns = read(_FOREIGN_KEY_COLUMNS) if options.include_foreign_keys else {}
    fk_actions = _foreign_key_actions(read, inspector, schema, fk_columns) if fk_columns else {}
    entries = {}
    for name, collation in tables.items():
        primary_key, uniques, indexes = _keys(keys.get(name, []), options)
        entries[name] = table_entry(
            name,
            columns=[
                _column(row, collation, connection.dialect, types, options) for row in columns.get(name, [])
            ],
            primary_key=primary_key,
            unique_constraints=uniques,
            check_constraints=({"name": row[2], "sqltext": row[3]} for row in checks.get(name, [])),
            indexes=indexes,
            foreign_keys=_foreign_keys(fk_columns.get(name, []), fk_actions.get(name, {})),
        )
    return entries


class _Reader:
    """Runs one query for the batch and groups its rows by table, keeping only the batch's tables."""

    def __init__(self, connection: Connection, schema: str, names: list[str]) -> None:
        self._connection, self._schema, self._names = connection, schema, names
        self._wanted = set(names)

    def __call__(self, query: TextClause) -> dict[str, list[Sequence[Any]]]:
        found: dict[str, list[Sequence[Any]]] = {}
        for row in self._connection.execute(query, {"schema": self._schema, "names": self._names}):
            if row[0] == self._schema and row[1] in self._wanted:
                found.setdefault(row[1], []).append(row)
        return found


def _column(
    row: Sequence[Any],
    table_collation: str | None,
    dialect: Dialect,
    types: MySQLTypeNames,
    options: TrainingOptions,
) -> Item:
    _schema, _table, name, column_type, is_nullable, default, charset, collation, extra, generated = row
    if not options.include_types:
        return column_entry(name, None, False, None, with_type=False)
    # SHOW CREATE TABLE, and so the inspector path, names a column's character set and collation
    # only when they differ from the table's.
    own = collation is not None and collation != table_collation
    type_name = types.name(dialect, (column_type, charset if own else None, collation if own else None))
    return column_entry(name, type_name, is_nullable == "YES", _default(default, extra, generated), True)


def _default(default: str | None, extra: str | None, generated: str | None) -> str | None:
    # MariaDB lists "no default" and "DEFAULT NULL" both as NULL; a string default keeps its quotes.
    if generated == "ALWAYS" or default is None or default == "NULL":
        return None
    # The inspector path reads `DEFAULT x ON UPDATE y` as one default; keep its text.
    on_update = _ON_UPDATE.search(extra or "")
    if on_update and _BARE_DEFAULT.fullmatch(default):
        return f"{default} ON UPDATE {on_update.group(1)}"
    return default


def _keys(
    rows: Sequence[Sequence[Any]], options: TrainingOptions
) -> tuple[Item | None, list[Item], list[Item]]:
    """The primary key, unique constraints and indexes of one table, from its STATISTICS rows."""
    by_index: dict[str, tuple[bool, list[str]]] = {}
    for _schema, _table, index, non_unique, column in rows:
        by_index.setdefault(index, (int(non_unique) == 0, []))[1].append(column)
    primary = by_index.pop("PRIMARY", None)
    keys = options.include_constraints
    # MySQL names every primary key PRIMARY.
    primary_key = {"name": "PRIMARY", "columns": primary[1]} if keys and primary else None
    uniques = [
        {"name": name, "columns": cols} for name, (unique, cols) in by_index.items() if keys and unique
    ]
    # A unique key is listed once, as a constraint, when constraints are read.
    indexes = [
        {"name": name, "columns": cols, "unique": unique}
        for name, (unique, cols) in by_index.items()
        if options.include_indexes and not (keys and unique)
    ]
    return primary_key, uniques, indexes


def _foreign_key_actions(
    read: _Reader, inspector: Inspector, schema: str, fk_columns: Mapping[str, Sequence[Sequence[Any]]]
) -> dict[str, Actions]:
    """ON DELETE and ON UPDATE of each foreign key, by table and constraint name.

    MariaDB lists a table's rows in REFERENTIAL_CONSTRAINTS only to an account holding some
    privilege on it beyond SELECT (REFERENCES will do). For a SELECT-only account the actions are
    nowhere but in SHOW CREATE TABLE: those tables, and only those, are read by the inspector.
    """
    actions: dict[str, Actions] = {
        table: {row[2]: (_RULES.get(row[3]), _RULES.get(row[4])) for row in rows}
        for table, rows in read(_FOREIGN_KEY_RULES).items()
    }
    for table, rows in fk_columns.items():
        if any(row[2] not in actions.get(table, {}) for row in rows):
            actions[table] = {
                fk["name"]: (
                    _RULES.get(str(fk["options"].get("ondelete"))),
                    _RULES.get(str(fk["options"].get("onupdate"))),
                )
                for fk in inspector.get_foreign_keys(table, schema=schema)
                if fk["name"] is not None
            }
    return actions


def _foreign_keys(rows: Sequence[Sequence[Any]], actions: Actions) -> list[Item]:
    keys: dict[str, Item] = {}
    for _schema, _table, name, column, referred_schema, referred_table, referred_column in rows:
        key = keys.get(name)
        if key is None:
            on_delete, on_update = actions.get(name, (None, None))
            key = keys[name] = {
                "name": name,
                "columns": [],
                "referredSchema": referred_schema,
                "referredTable": referred_table,
                "referredColumns": [],
                "onDelete": on_delete,
                "onUpdate": on_update,
            }
        key["columns"].append(column)
        key["referredColumns"].append(referred_column)
    return list(keys.values())
