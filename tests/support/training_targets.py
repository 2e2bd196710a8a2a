"""Schema-training helpers and fixtures: real PostgreSQL and MariaDB databases with awkward schemas.

Imported by tests/training/conftest.py (fixtures) and the test modules (helpers): one module, so
one `CANARY` per run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy.engine import URL

from explorer_jobs.connections import service
from explorer_jobs.connections.models import ConnectionCreate
from explorer_jobs.context import JobContext
from tests.support.databases import (
    MYSQL_ADMIN_URL,
    admin_engine,
    run_sql,
    throwaway_mysql_databases,
    throwaway_pg_database,
    unique_name,
)

# A password that would show up anywhere it leaked to, and that breaks any URL pasted by hand.
CANARY = f"c@n:ary/p%ss w0rd#{os.urandom(4).hex()}"

PG_SCHEMA = '''
CREATE SCHEMA sales;
CREATE SCHEMA "Odd Schema";
CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE public.users (
  id serial PRIMARY KEY,
  email varchar(255) NOT NULL,
  mood mood,
  tags text[],
  profile jsonb NOT NULL DEFAULT '{}'::jsonb,
  manager_id integer REFERENCES public.users (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT users_email_key UNIQUE (email),
  CONSTRAINT users_email_not_blank CHECK (email <> '')
);
CREATE UNIQUE INDEX users_lower_email ON public.users (lower(email));
CREATE INDEX users_with_manager ON public.users (created_at) WHERE manager_id IS NOT NULL;
CREATE TABLE public."CamelCase" ("Id" bigint PRIMARY KEY, "Display Name" text);
CREATE VIEW public.user_emails AS SELECT email FROM public.users;
CREATE TABLE sales.orders (
  order_id integer,
  line_no smallint,
  user_id integer NOT NULL REFERENCES public.users (id) ON DELETE CASCADE ON UPDATE RESTRICT,
  total numeric(10, 2) NOT NULL CONSTRAINT orders_total_positive CHECK (total >= 0),
  status mood,
  PRIMARY KEY (order_id, line_no)
);
CREATE TABLE sales.shipments (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  order_id integer NOT NULL,
  line_no smallint NOT NULL,
  shipped_on date,
  CONSTRAINT shipments_line_fk FOREIGN KEY (order_id, line_no) REFERENCES sales.orders (order_id, line_no),
  CONSTRAINT shipments_once UNIQUE (order_id, line_no, shipped_on)
);
CREATE INDEX shipments_mixed ON sales.shipments (order_id, (shipped_on + 1));
CREATE TABLE "Odd Schema"."it's a ""table""" (
  "Weird ""Col""" text,
  ref bigint REFERENCES sales.shipments (id)
)
'''

MYSQL_SCHEMA = """
CREATE TABLE `{a}`.users (
  id int AUTO_INCREMENT PRIMARY KEY,
  email varchar(255) NOT NULL,
  mood enum('sad','ok','happy'),
  profile json,
  manager_id int,
  total decimal(10,2) NOT NULL DEFAULT 0,
  CONSTRAINT users_email_key UNIQUE (email),
  CONSTRAINT users_manager_fk FOREIGN KEY (manager_id) REFERENCES users (id) ON DELETE SET NULL,
  CONSTRAINT users_total_positive CHECK (total >= 0),
  KEY users_mood_total (mood, total)
);
CREATE TABLE `{a}`.`Order Lines` (
  order_id int,
  line_no smallint,
  user_id int NOT NULL,
  PRIMARY KEY (order_id, line_no),
  CONSTRAINT lines_user_fk FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE TABLE `{b}`.`It's "Quoted"` (
  id bigint PRIMARY KEY,
  order_id int,
  line_no smallint,
  CONSTRAINT quoted_line_fk FOREIGN KEY (order_id, line_no) REFERENCES `{a}`.`Order Lines` (order_id, line_no)
)
"""


@dataclass
class MySQLTarget:
    databases: list[str]
    user: str


@pytest.fixture(scope="module")
def pg_target() -> Iterator[URL]:
    """A PostgreSQL database with the fixture schema (read-only for the tests: they share it)."""
    with throwaway_pg_database() as url:
        run_sql(url, PG_SCHEMA)
        yield url


@pytest.fixture(scope="module")
def mysql_target() -> Iterator[MySQLTarget]:
    """Two MariaDB databases (one with a space in its name) and a user who sees only them."""
    with throwaway_mysql_databases("a", "Other Db") as (a, b):
        run_sql(MYSQL_ADMIN_URL, MYSQL_SCHEMA.format(a=a, b=b))
        user = unique_name("ej_u")
        admin = admin_engine(MYSQL_ADMIN_URL)
        with admin.connect() as conn:
            conn.exec_driver_sql("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, CANARY))
            for database in (a, b):
                conn.exec_driver_sql(f"GRANT SELECT ON `{database}`.* TO %s@'%%'", (user,))
        try:
            yield MySQLTarget([a, b], user)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql("DROP USER IF EXISTS %s@'%%'", (user,))
            admin.dispose()


def add_pg_connection(user_id: str, url: URL, password: str = CANARY) -> str:
    """Save a connection to `url` (trust auth here: the password is carried, not checked)."""
    created = service.create_connection(
        user_id,
        ConnectionCreate(
            name="pg",
            dialect="postgresql",
            host=url.host or "",
            port=url.port,
            database=url.database or "",
            username=url.username or "",
            password=password,
        ),
    )
    return created.id


def add_mysql_connection(user_id: str, target: MySQLTarget, password: str = CANARY) -> str:
    created = service.create_connection(
        user_id,
        ConnectionCreate(
            name="maria",
            dialect="mysql",
            host=MYSQL_ADMIN_URL.host or "",
            port=MYSQL_ADMIN_URL.port or 3306,
            database=target.databases[0],
            username=target.user,
            password=password,
        ),
    )
    return created.id


@dataclass
class ContextLog:
    """What a processor reported through its JobContext."""

    progress: list[tuple[int, str | None]] = field(default_factory=list)
    cancel_reads: int = 0


def make_context(user_id: str, cancel_after: int | None = None) -> tuple[JobContext, ContextLog]:
    """A JobContext wired to in-memory callables; `_read_cancel` says True from call `cancel_after` on."""
    log = ContextLog()

    async def report(percent: int, message: str | None) -> bool:
        log.progress.append((percent, message))
        return False

    async def read_cancel() -> bool:
        log.cancel_reads += 1
        return cancel_after is not None and log.cancel_reads >= cancel_after

    ctx = JobContext(
        job_id=unique_name("job"),
        job_type="schema_training",
        user_id=user_id,
        attempt=1,
        max_attempts=3,
        data={},
        token="token",
        _report=report,
        _read_cancel=read_cancel,
    )
    return ctx, log
