"""MySQL/MariaDB column types named the way the cache has always named them (SQLAlchemy's DDL).

The inspector path builds a SQLAlchemy type from each `SHOW CREATE TABLE` column line and the
cache stores its compiled name (`INTEGER(11)`, `DECIMAL(10, 2)`, `VARCHAR(20) CHARACTER SET latin1
COLLATE latin1_swedish_ci`); keeping that name means a version read by the catalog reader compares
equal to one read before. `information_schema.COLUMNS.COLUMN_TYPE` is the same text as that line's
type, so the type is built the same way from the dialect's public table of types, once per
distinct type. A type SQLAlchemy does not know (`inet6`) keeps the catalog's name, as before.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.dialects.mysql import DATETIME, ENUM, SET, TIME, TIMESTAMP
from sqlalchemy.engine import Dialect

from explorer_jobs.training.reflected import type_name

# `int(10) unsigned zerofill`, `enum('a''b','c')`, `decimal(10,2)`, `longtext`
_COLUMN_TYPE = re.compile(
    r"(?P<name>\w+)(?:\((?P<args>.*)\))?(?P<unsigned> unsigned)?(?P<zerofill> zerofill)?", re.DOTALL
)
_QUOTED = re.compile(r"'(?:''|[^'])*'")
_NUMBER = re.compile(r"\d+")

# COLUMN_TYPE, and the character set and collation when they differ from the table's.
TypeKey = tuple[str, str | None, str | None]


class MySQLTypeNames:
    """The type names worked out during one training."""

    def __init__(self) -> None:
        self._known: dict[TypeKey, str] = {}

    def name(self, dialect: Dialect, key: TypeKey) -> str:
        found = self._known.get(key)
        if found is None:
            found = self._known[key] = _type_name(dialect, *key)
        return found


def _type_name(dialect: Dialect, column_type: str, charset: str | None, collation: str | None) -> str:
    match = _COLUMN_TYPE.fullmatch(column_type)
    type_class = getattr(dialect, "ischema_names", {}).get(match["name"]) if match else None
    if match is None or type_class is None:
        return column_type
    args: list[Any] = _arguments(match["args"])
    kw: dict[str, Any] = {}
    # The same arguments SQLAlchemy's MySQL reflection gives the type for the same column.
    if issubclass(type_class, (DATETIME, TIME, TIMESTAMP)) and args:
        kw["fsp"] = args.pop(0)
    if match["unsigned"]:
        kw["unsigned"] = True
    if match["zerofill"]:
        kw["zerofill"] = True
    if charset:
        kw["charset"] = charset
    if collation:
        kw["collate"] = collation
    if issubclass(type_class, (ENUM, SET)):
        args = [value[1:-1].replace("''", "'") for value in args]
        if issubclass(type_class, SET) and "" in args:
            kw["retrieve_as_bitwise"] = True
    return type_name(type_class(*args, **kw), dialect) or column_type


def _arguments(text: str | None) -> list[Any]:
    if not text:
        return []
    if text[0] == "'" and text[-1] == "'":
        return _QUOTED.findall(text)
    return [int(number) for number in _NUMBER.findall(text)]
