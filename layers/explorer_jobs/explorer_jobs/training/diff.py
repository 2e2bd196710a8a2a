"""What changed between two cache versions: tables and columns added, removed, altered."""

from __future__ import annotations

from typing import Any

# Lists in a job result are capped (the result travels through Redis and SSE); counts are exact.
MAX_LISTED = 100
_TABLE_PARTS = ("primaryKey", "uniqueConstraints", "checkConstraints", "indexes", "foreignKeys")


def diff_schemas(before: list[dict[str, Any]] | None, after: list[dict[str, Any]]) -> dict[str, Any]:
    """Tables added, removed and altered from `before` to `after` (both cache `schemas` lists)."""
    old, new = _tables(before or []), _tables(after)
    added = [key for key in new if key not in old]
    removed = [key for key in old if key not in new]
    altered = []
    for key in new:
        if key in old:
            change = _table_change(old[key], new[key])
            if change:
                altered.append({"schema": key[0], "table": key[1], **change})
    return {
        "counts": {"tablesAdded": len(added), "tablesRemoved": len(removed), "tablesAltered": len(altered)},
        "tablesAdded": [{"schema": s, "table": t} for s, t in added[:MAX_LISTED]],
        "tablesRemoved": [{"schema": s, "table": t} for s, t in removed[:MAX_LISTED]],
        "tablesAltered": altered[:MAX_LISTED],
        "truncated": max(len(added), len(removed), len(altered)) > MAX_LISTED,
    }


def _table_change(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    old_columns = {c["name"]: c for c in old.get("columns", [])}
    new_columns = {c["name"]: c for c in new.get("columns", [])}
    change: dict[str, Any] = {
        "columnsAdded": [name for name in new_columns if name not in old_columns],
        "columnsRemoved": [name for name in old_columns if name not in new_columns],
        "columnsAltered": [
            name
            for name, column in new_columns.items()
            if name in old_columns and old_columns[name] != column
        ],
        "otherChanges": [part for part in _TABLE_PARTS if old.get(part) != new.get(part)],
    }
    return change if any(change.values()) else {}


def _tables(schemas: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(schema["name"], table["name"]): table for schema in schemas for table in schema["tables"]}
