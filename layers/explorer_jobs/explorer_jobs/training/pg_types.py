"""PostgreSQL column types named the way SQLAlchemy names them, learnt once per distinct type.

The cache has always stored SQLAlchemy's name for a type (`VARCHAR(255)`, `NUMERIC(10, 2)`,
`TIMESTAMP WITH TIME ZONE`, an enum's own name), and changing that would show every column as
altered in the next version's diff. SQLAlchemy derives that name from `format_type()`, the
column's collation and the database's enums and domains, in private code that differs between
its releases. So rather than copy it, we ask SQLAlchemy itself, through the public inspector, about
one column of each kind we have not seen yet; a schema of a thousand tables has a few dozen kinds,
so that is one small extra query in the first batch and usually none after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects.postgresql import DOMAIN
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.reflection import Inspector

from explorer_jobs.training.reflected import type_name

# What a type's name depends on: format_type() and a collation other than the type's own
# (its name, and its schema when that is not on the search path).
TypeKey = tuple[str | None, str | None, str | None]


@dataclass(frozen=True, slots=True)
class TypeInfo:
    """A type's name in the cache and, for a domain, what it imposes on its columns."""

    name: str | None
    domain_default: str | None = None
    domain_not_null: bool = False


def type_key(column: Mapping[str, Any]) -> TypeKey:
    """The key of a column as the catalog reader's query returns it."""
    collation = column.get("collation") or (None, None)
    return (column["type"], collation[0], collation[1])


class PgTypeNames:
    """The type names learnt during one training (one connection, one search path)."""

    def __init__(self) -> None:
        self._known: dict[TypeKey, TypeInfo] = {}

    def learn(
        self, inspector: Inspector, schema: str, columns: Mapping[str, list[Mapping[str, Any]]]
    ) -> None:
        """Ask SQLAlchemy about each kind of type among `columns` (by table) not seen before."""
        samples: dict[TypeKey, tuple[str, str]] = {}
        for table, cols in columns.items():
            for column in cols:
                key = type_key(column)
                if key not in self._known and key not in samples:
                    samples[key] = (table, column["name"])
        if not samples:
            return
        tables = sorted({table for table, _ in samples.values()})
        reflected = {
            table: {col["name"]: col for col in cols}
            for (_schema, table), cols in inspector.get_multi_columns(
                schema=schema, filter_names=tables
            ).items()
        }
        for key, (table, column_name) in samples.items():
            col = reflected.get(table, {}).get(column_name)
            if col is not None:  # else dropped meanwhile: named by the catalog this time, asked again next
                self._known[key] = _info(col["type"], inspector.dialect, key[0])

    def info(self, key: TypeKey) -> TypeInfo:
        """What was learnt about `key`; the catalog's own name for a type SQLAlchemy could not name."""
        return self._known.get(key) or TypeInfo(key[0])


def _info(type_: Any, dialect: Dialect, catalog_name: str | None) -> TypeInfo:
    name = type_name(type_, dialect) or catalog_name
    if isinstance(type_, DOMAIN):
        default = None if type_.default is None else str(type_.default)
        return TypeInfo(name, default, bool(type_.not_null))
    return TypeInfo(name)
