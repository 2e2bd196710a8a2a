"""Plan a training (which tables, in which batches) and read each batch with the best reader.

Requested names are matched against what the database lists; only listed names reach a query,
and as bound parameters, never pasted into SQL. A batch is read by a catalog reader where one
exists for the database (PostgreSQL 12+, MariaDB 10.5.10+: a query or a few per batch, whatever
its size), and otherwise by SQLAlchemy's inspector (see reflected). They produce the same entries,
but where the inspector loses text (each catalog reader's docstring lists where).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine.reflection import Inspector

from explorer_jobs.connections.catalog import table_names, user_schemas
from explorer_jobs.training import mariadb_catalog, pg_catalog
from explorer_jobs.training.entries import Table
from explorer_jobs.training.mysql_types import MySQLTypeNames
from explorer_jobs.training.payload import TrainingOptions
from explorer_jobs.training.pg_types import PgTypeNames
from explorer_jobs.training.reflected import reflect_tables

__all__ = ["Table", "TableReader", "TrainingPlan", "batch_size_for", "batches", "plan_training"]

# Batches: at least MIN tables (fewer queries), at most MAX (bounded work between cancel checks),
# and about TARGET_BATCHES of them for a large database (progress moves in visible steps).
MIN_BATCH_TABLES = 50
MAX_BATCH_TABLES = 500
TARGET_BATCHES = 10


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


class TableReader:
    """Reads the batches of one training; what it learns about types is kept for the next batch."""

    def __init__(self, options: TrainingOptions) -> None:
        self.options = options
        self._pg_types = PgTypeNames()
        self._mysql_types = MySQLTypeNames()

    def read(
        self, schema: str, names: list[str], connection: Connection, inspector: Inspector
    ) -> list[Table]:
        """The cache entries of `names` in `schema`, in that order; tables dropped meanwhile are left out."""
        dialect = connection.dialect
        if pg_catalog.supports(dialect):
            found = pg_catalog.read_tables(connection, inspector, schema, names, self.options, self._pg_types)
        elif mariadb_catalog.supports(dialect):
            found = mariadb_catalog.read_tables(
                connection, inspector, schema, names, self.options, self._mysql_types
            )
        else:
            found = reflect_tables(connection, inspector, schema, names, self.options)
        return [found[name] for name in names if name in found]


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))
