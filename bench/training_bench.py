"""Schema training vs the database's own schema dump, on a generated database of many tables.

    .venv/bin/python bench/training_bench.py [--tables 1000] [--runs 3] [--dialect postgresql mysql]

For each dialect: build a throwaway database of N tables (10 columns, a primary key, 2 indexes and a
foreign key each), then time, in the same run and alternating, the full `schema_training`
processor (connect, read, save a cache version to a temporary SQLite store) against
`pg_dump --schema-only` / `mysqldump --no-data`, and count the SQL statements the training sends to
the target (a `before_cursor_execute` listener). Prints medians as a Markdown table.
Needs the local PostgreSQL (postgres, trust) and MariaDB (root, no password), and their clients.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet

# The service's settings come from the environment: point them at a scratch store first.
_HOME = tempfile.mkdtemp(prefix="ej-training-bench-")
os.environ.update(
    EXPLORER_JOBS_HOME=_HOME,
    ENCRYPTION_KEY=Fernet.generate_key().decode(),
    ALLOW_PRIVATE_HOSTS="true",
    TARGET_STATEMENT_TIMEOUT_SECONDS="600",
)
os.environ.pop("DATABASE_URL", None)

from sqlalchemy import Engine, event  # noqa: E402

from explorer_jobs.connections import service  # noqa: E402
from explorer_jobs.connections.models import ConnectionCreate  # noqa: E402
from explorer_jobs.context import JobContext  # noqa: E402
from explorer_jobs.store.migrate import upgrade_database  # noqa: E402
from explorer_jobs.training.payload import SchemaTrainingPayload  # noqa: E402
from explorer_jobs.training.processor import train_schema  # noqa: E402

PG = {"host": "127.0.0.1", "user": "postgres"}
MYSQL = {"host": "127.0.0.1", "user": "root"}


@dataclass
class Figures:
    dialect: str
    tables: int
    train_seconds: list[float]
    dump_seconds: list[float]
    queries: int


def ddl(tables: int, dialect: str) -> str:
    """N tables chained by foreign keys (each to the previous one; the first to itself)."""
    json_type, ts_type = ("jsonb", "timestamptz") if dialect == "postgresql" else ("json", "datetime")
    statements = []
    for i in range(tables):
        parent = f"t_{max(i - 1, 0):04}"
        statements.append(
            f"CREATE TABLE t_{i:04} (id bigint PRIMARY KEY, parent_id bigint REFERENCES {parent} (id), "
            f"c1 integer NOT NULL, c2 varchar(100), c3 varchar(100), c4 numeric(12, 2), c5 {ts_type}, "
            f"c6 boolean, c7 {json_type}, c8 date)"
        )
        statements.append(f"CREATE INDEX t_{i:04}_c1 ON t_{i:04} (c1)")
        statements.append(f"CREATE INDEX t_{i:04}_c2_c3 ON t_{i:04} (c2, c3)")
    return ";\n".join(statements) + ";\n"


def run(cmd: list[str], stdin: str | None = None) -> None:
    subprocess.run(cmd, input=stdin, text=True, check=True, stdout=subprocess.DEVNULL)


def timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    run(cmd)
    return time.perf_counter() - started


class QueryCounter:
    """Counts statements sent to engines of one dialect (the target), not the SQLite store."""

    def __init__(self, dialect: str) -> None:
        self.dialect, self.count = dialect, 0
        event.listen(Engine, "before_cursor_execute", self._count)

    def _count(self, conn: Any, *_args: Any) -> None:
        if conn.dialect.name == self.dialect:
            self.count += 1

    def close(self) -> None:
        event.remove(Engine, "before_cursor_execute", self._count)


async def train_once(connection_id: str, schemas: list[str] | None, dialect: str) -> tuple[float, int]:
    async def report(_pct: int, _msg: str | None) -> bool:
        return False

    async def read_cancel() -> bool:
        return False

    ctx = JobContext(
        job_id=uuid.uuid4().hex,
        job_type="schema_training",
        user_id="bench",
        attempt=1,
        max_attempts=1,
        data={},
        token="t",
        _report=report,
        _read_cancel=read_cancel,
    )
    counter = QueryCounter(dialect)
    started = time.perf_counter()
    try:
        result = await train_schema(ctx, SchemaTrainingPayload(connection_id=connection_id, schemas=schemas))
    finally:
        counter.close()
    elapsed = time.perf_counter() - started
    if result["counts"]["tables"] == 0:
        raise SystemExit("training read no tables")
    return elapsed, counter.count


def bench_postgresql(tables: int, runs: int) -> Figures:
    name = f"ej_bench_{uuid.uuid4().hex[:8]}"
    psql = ["psql", "-q", "-v", "ON_ERROR_STOP=1", "-h", PG["host"], "-U", PG["user"]]
    run([*psql, "-d", "postgres", "-c", f'CREATE DATABASE "{name}"'])
    try:
        run([*psql, "-d", name, "-1", "-f", "-"], stdin=ddl(tables, "postgresql"))
        connection = service.create_connection(
            "bench",
            ConnectionCreate(
                name="b",
                dialect="postgresql",
                host=PG["host"],
                database=name,
                username=PG["user"],
                password="x",
            ),
        )
        dump = ["pg_dump", "--schema-only", "-h", PG["host"], "-U", PG["user"], "-d", name, "-f", os.devnull]
        return measure("postgresql", tables, runs, connection.id, None, dump)
    finally:
        run([*psql, "-d", "postgres", "-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'])


def bench_mysql(tables: int, runs: int) -> Figures:
    name = f"ej_bench_{uuid.uuid4().hex[:8]}"
    mysql = ["mysql", "-h", MYSQL["host"], "-u", MYSQL["user"]]
    run([*mysql, "-e", f"CREATE DATABASE `{name}`"])
    try:
        run([*mysql, name], stdin=ddl(tables, "mysql"))
        connection = service.create_connection(
            "bench",
            ConnectionCreate(
                name="b", dialect="mysql", host=MYSQL["host"], database=name, username=MYSQL["user"]
            ),
        )
        dump = [
            "mysqldump",
            "--no-data",
            "-h",
            MYSQL["host"],
            "-u",
            MYSQL["user"],
            f"--result-file={os.devnull}",
        ]
        # root sees every database on the server: train the bench database only.
        return measure("mysql", tables, runs, connection.id, [name], [*dump, "--databases", name])
    finally:
        run([*mysql, "-e", f"DROP DATABASE IF EXISTS `{name}`"])


def measure(
    dialect: str, tables: int, runs: int, connection_id: str, schemas: list[str] | None, dump: list[str]
) -> Figures:
    figures = Figures(dialect, tables, [], [], 0)
    timed(dump)  # warm the server's catalog caches for both contenders alike
    for _ in range(runs):
        seconds, queries = asyncio.run(train_once(connection_id, schemas, dialect))
        figures.train_seconds.append(seconds)
        figures.queries = queries
        figures.dump_seconds.append(timed(dump))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--dialect", nargs="+", default=["postgresql", "mysql"], choices=["postgresql", "mysql"]
    )
    args = parser.parse_args()
    upgrade_database()
    results = []
    for dialect in args.dialect:
        bench = bench_postgresql if dialect == "postgresql" else bench_mysql
        results.append(bench(args.tables, args.runs))
    print(f"\nschema training vs schema dump, {args.tables} tables, median of {args.runs} runs\n")
    print("| database | tables | training (s) | dump (s) | training / dump | queries to the target |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for f in results:
        train, dump = statistics.median(f.train_seconds), statistics.median(f.dump_seconds)
        tool = "pg_dump --schema-only" if f.dialect == "postgresql" else "mysqldump --no-data"
        label = "PostgreSQL 15" if f.dialect == "postgresql" else "MariaDB 10.11"
        ratio = f"{train / dump:.2f}x"
        print(f"| {label} vs `{tool}` | {f.tables} | {train:.2f} | {dump:.2f} | {ratio} | {f.queries} |")


if __name__ == "__main__":
    main()
