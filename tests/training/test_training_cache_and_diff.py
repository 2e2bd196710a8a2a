"""Building the next cache version from the previous one, and diffing the two (no database)."""

from __future__ import annotations

from typing import Any

from explorer_jobs.training.cache import merge_cache
from explorer_jobs.training.diff import MAX_LISTED, diff_schemas
from explorer_jobs.training.introspect import TrainingPlan


def table(name: str, *columns: str, **parts: Any) -> dict[str, Any]:
    return {
        "name": name,
        "columns": [{"name": c, "type": "INTEGER", "nullable": True, "default": None} for c in columns],
        "primaryKey": parts.get("primaryKey"),
        "uniqueConstraints": [],
        "checkConstraints": [],
        "indexes": parts.get("indexes", []),
        "foreignKeys": [],
    }


PREVIOUS = [
    {"name": "gone", "tables": [table("t", "a")]},
    {"name": "public", "tables": [table("keep", "a"), table("orders", "a"), table("users", "a")]},
    {"name": "sales", "tables": [table("old", "a")]},
]


def plan(**fields: Any) -> TrainingPlan:
    values: dict[str, Any] = {
        "tables": {},
        "whole_schemas": frozenset(),
        "all_schemas": False,
        "available_schemas": frozenset({"public", "sales"}),
    }
    values.update(fields)
    return TrainingPlan(**values)


def names(schemas: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    return [(s["name"], [t["name"] for t in s["tables"]]) for s in schemas]


def test_a_table_subset_replaces_those_tables_and_drops_missing_ones() -> None:
    merged = merge_cache(
        PREVIOUS,
        plan(tables={"public": ["users"]}, missing_tables={"public": ["orders"]}),
        {"public": [table("users", "a", "b")]},
    )
    assert names(merged) == [("gone", ["t"]), ("public", ["keep", "users"]), ("sales", ["old"])]
    assert [c["name"] for c in merged[1]["tables"][1]["columns"]] == ["a", "b"]


def test_a_whole_schema_replaces_its_tables_and_all_schemas_drops_vanished_schemas() -> None:
    merged = merge_cache(
        PREVIOUS,
        plan(tables={"sales": ["new"]}, whole_schemas=frozenset({"sales"}), all_schemas=True),
        {"sales": [table("new", "x")]},
    )
    assert names(merged) == [("public", ["keep", "orders", "users"]), ("sales", ["new"])]


def test_a_missing_schema_is_dropped_from_the_cache() -> None:
    assert names(merge_cache(PREVIOUS, plan(missing_schemas=["gone"]), {})) == [
        ("public", ["keep", "orders", "users"]),
        ("sales", ["old"]),
    ]


def test_first_training_has_no_previous() -> None:
    merged = merge_cache(
        None, plan(tables={"public": ["a"]}, whole_schemas=frozenset({"public"})), {"public": [table("a")]}
    )
    assert names(merged) == [("public", ["a"])]


def test_diff_lists_added_removed_and_altered_tables_and_columns() -> None:
    after = [
        {
            "name": "public",
            "tables": [
                table("keep", "a"),
                table("orders", "a", "b", primaryKey={"name": "pk", "columns": ["a"]}),
                {
                    **table("users"),
                    "columns": [{"name": "a", "type": "TEXT", "nullable": True, "default": None}],
                },
            ],
        },
        {"name": "sales", "tables": [table("new", "x")]},
    ]
    diff = diff_schemas(PREVIOUS, after)
    assert diff["counts"] == {"tablesAdded": 1, "tablesRemoved": 2, "tablesAltered": 2}
    assert diff["tablesAdded"] == [{"schema": "sales", "table": "new"}]
    assert diff["tablesRemoved"] == [{"schema": "gone", "table": "t"}, {"schema": "sales", "table": "old"}]
    assert diff["tablesAltered"] == [
        {
            "schema": "public",
            "table": "orders",
            "columnsAdded": ["b"],
            "columnsRemoved": [],
            "columnsAltered": [],
            "otherChanges": ["primaryKey"],
        },
        {
            "schema": "public",
            "table": "users",
            "columnsAdded": [],
            "columnsRemoved": [],
            "columnsAltered": ["a"],
            "otherChanges": [],
        },
    ]
    assert diff["truncated"] is False


def test_diff_lists_are_capped_but_counts_are_exact() -> None:
    many = [{"name": "s", "tables": [table(f"t{i:04}") for i in range(MAX_LISTED + 5)]}]
    diff = diff_schemas(None, many)
    assert diff["counts"]["tablesAdded"] == MAX_LISTED + 5
    assert len(diff["tablesAdded"]) == MAX_LISTED and diff["truncated"] is True
    assert diff_schemas(many, many)["counts"] == {"tablesAdded": 0, "tablesRemoved": 0, "tablesAltered": 0}
