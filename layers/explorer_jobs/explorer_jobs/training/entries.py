"""A table's cache entry, the shape API.md describes, whichever reader filled it in.

Every reader (SQLAlchemy's inspector, the PostgreSQL and MariaDB catalog readers) ends here, so
the ordering rules live in one place and two versions of a table compare equal item by item.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Table = dict[str, Any]
Item = dict[str, Any]


def named(items: Iterable[Item]) -> list[Item]:
    """By name, unnamed ones last: catalogs list constraints and indexes in no stable order."""
    return sorted(items, key=lambda item: (item["name"] is None, item["name"] or ""))


def column_entry(name: str, type_name: str | None, nullable: bool, default: Any, with_type: bool) -> Item:
    """A column; only its name when types are not read."""
    if not with_type:
        return {"name": name}
    return {
        "name": name,
        "type": type_name,
        "nullable": nullable,
        "default": None if default is None else str(default),
    }


def table_entry(
    name: str,
    *,
    columns: list[Item],
    primary_key: Item | None,
    unique_constraints: Iterable[Item],
    check_constraints: Iterable[Item],
    indexes: Iterable[Item],
    foreign_keys: Iterable[Item],
) -> Table:
    """The entry for one table; columns stay in the table's own order, the rest sorted by name."""
    return {
        "name": name,
        "columns": columns,
        "primaryKey": primary_key,
        "uniqueConstraints": named(unique_constraints),
        "checkConstraints": named(check_constraints),
        "indexes": named(indexes),
        "foreignKeys": named(foreign_keys),
    }
