"""Build a cache version: what a training read replaces its previous entries, the rest is kept."""

from __future__ import annotations

from typing import Any

from explorer_jobs.training.introspect import Table, TrainingPlan


def merge_cache(
    previous: list[dict[str, Any]] | None, plan: TrainingPlan, trained: dict[str, list[Table]]
) -> list[dict[str, Any]]:
    """The `schemas` of the next cache version.

    A schema read in full replaces its cached tables; a schema read for some tables replaces those.
    Names the training found missing are dropped from the cache (the database no longer has them),
    and when every schema was read, so are cached schemas the database no longer lists.
    """
    cached: dict[str, dict[str, Table]] = {
        schema["name"]: {table["name"]: table for table in schema["tables"]} for schema in previous or []
    }
    if plan.all_schemas:
        cached = {name: tables for name, tables in cached.items() if name in plan.available_schemas}
    for schema in plan.missing_schemas:
        cached.pop(schema, None)
    for schema, names in plan.tables.items():
        read = {table["name"]: table for table in trained.get(schema, [])}
        if schema in plan.whole_schemas:
            cached[schema] = read
            continue
        tables = cached.setdefault(schema, {})
        for name in names:  # requested and listed; absent from `read` if dropped meanwhile
            if name in read:
                tables[name] = read[name]
            else:
                tables.pop(name, None)
        for name in plan.missing_tables.get(schema, []):
            tables.pop(name, None)
    return [
        {"name": schema, "tables": [tables[name] for name in sorted(tables)]}
        for schema, tables in sorted(cached.items())
    ]
