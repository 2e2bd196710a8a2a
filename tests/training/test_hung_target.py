"""A target database that hangs mid-query (a lock held by someone else, `pg_sleep`, `SLEEP`): the job
times out on time, its session on the target is ended rather than left running until the statement
timeout, and the worker's slot takes the next job at once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from explorer_jobs.models import JobStatus
from explorer_jobs.queue import Queue
from explorer_jobs.redis_client import RedisClient
from explorer_jobs.settings import Settings
from explorer_jobs.worker import Worker
from tests.conftest import TEST_REDIS_URL, queue_settings
from tests.support.databases import (
    MYSQL_ADMIN_URL,
    PG_ADMIN_URL,
    admin_engine,
    run_sql,
    target_sessions,
    throwaway_pg_database,
    unique_name,
)
from tests.support.events import has_event, wait_for_events
from tests.support.training_targets import MySQLTarget, add_mysql_connection, add_pg_connection
from tests.support.workers import running

USER = "alice"
TIMEOUT = 1.0
# How long past its timeout a hung job may take to settle, and its target session to be gone.
# Without the server-side cancel both take the statement timeout (30 s under isolated_store).
SETTLE = 3.0


@pytest.fixture(scope="module")
def pg_db() -> Iterator[URL]:
    """A database of this module's own: its sessions are told apart from every other test's by name."""
    with throwaway_pg_database() as url:
        run_sql(url, "CREATE TABLE migrating (id integer DEFAULT 1)")
        yield url


@pytest.fixture
async def single_queue(redis: RedisClient) -> Queue:
    return Queue(redis, queue_settings(TEST_REDIS_URL))


def worker_running(queue: Queue) -> contextlib.AbstractAsyncContextManager[Worker]:
    # Concurrency 1: the job after the hung one starts only once the hung one's slot is free.
    return running(Worker(queue, concurrency=1))


def mysql_sessions(user: str) -> Callable[[], int]:
    def count() -> int:
        engine = admin_engine(MYSQL_ADMIN_URL)
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT count(*) FROM information_schema.PROCESSLIST WHERE USER = :user"), {"user": user}
            ).scalar_one()
        engine.dispose()
        return int(found)

    return count


async def assert_no_sessions_within(count: Callable[[], int], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        left = await asyncio.to_thread(count)
        if not left or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)  # the server's own bookkeeping after a kill: there is no event to await
    assert left == 0, f"{left} sessions of the timed-out job are still open on the target"


async def run_hung_job_then_another(
    queue: Queue, job_type: str, payload: dict[str, object], sessions: Callable[[], int] | None = None
) -> None:
    hung = (await queue.enqueue(job_type, payload, user_id=USER, timeout=TIMEOUT, max_attempts=1)).job
    after = (await queue.enqueue("test_echo", {"value": "next"}, user_id=USER)).job
    async with worker_running(queue):
        await wait_for_events(queue, USER, has_event(hung.job_id, "job_started"), timeout=SETTLE)
        await wait_for_events(queue, USER, has_event(hung.job_id, "job_failed"), timeout=TIMEOUT + SETTLE)
        if sessions is not None:
            await assert_no_sessions_within(sessions, SETTLE)
        await wait_for_events(queue, USER, has_event(after.job_id, "job_completed"), timeout=SETTLE)
    failed, done = await queue.get(hung.job_id), await queue.get(after.job_id)
    assert failed.status is JobStatus.FAILED and failed.error == f"timed out after {TIMEOUT:g} s"
    assert seconds_between(failed.started_at, failed.finished_at) < TIMEOUT + SETTLE
    assert done.status is JobStatus.COMPLETED
    assert seconds_between(failed.finished_at, done.started_at) < SETTLE, "the slot was not freed at once"


def seconds_between(start: datetime | None, end: datetime | None) -> float:
    assert start is not None and end is not None
    return (end - start).total_seconds()


async def test_training_stuck_behind_a_lock_times_out_and_ends_its_session(
    isolated_store: Settings, single_queue: Queue, pg_db: URL
) -> None:
    # A migration holding ACCESS EXCLUSIVE on a table: reading its column defaults waits for it.
    holder = create_engine(pg_db, poolclass=NullPool)
    with holder.connect() as lock:
        lock.exec_driver_sql("LOCK TABLE migrating IN ACCESS EXCLUSIVE MODE")
        connection_id = add_pg_connection(USER, pg_db)
        await run_hung_job_then_another(
            single_queue, "schema_training", {"connectionId": connection_id}, lambda: target_sessions(pg_db)
        )
        lock.rollback()
    holder.dispose()


async def test_pg_sleep_times_out_and_ends_its_session(
    isolated_store: Settings, single_queue: Queue, pg_db: URL
) -> None:
    connection_id = add_pg_connection(USER, pg_db)
    await run_hung_job_then_another(
        single_queue, "test_target_sleep", {"connection_id": connection_id}, lambda: target_sessions(pg_db)
    )


async def test_mariadb_sleep_times_out_and_ends_its_session(
    isolated_store: Settings, single_queue: Queue, mysql_target: MySQLTarget
) -> None:
    connection_id = add_mysql_connection(USER, mysql_target)
    await run_hung_job_then_another(
        single_queue, "test_target_sleep", {"connection_id": connection_id}, mysql_sessions(mysql_target.user)
    )


@contextlib.contextmanager
def pg_role_with_one_connection() -> Iterator[str]:
    role = unique_name("ej_r")
    admin = admin_engine(PG_ADMIN_URL)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 1')
    try:
        yield role
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,)
            )
            conn.exec_driver_sql(f'DROP ROLE "{role}"')
        admin.dispose()


@contextlib.contextmanager
def mysql_user_with_one_connection(target: MySQLTarget) -> Iterator[str]:
    admin = admin_engine(MYSQL_ADMIN_URL)
    with admin.connect() as conn:
        conn.exec_driver_sql("ALTER USER %s@'%%' WITH MAX_USER_CONNECTIONS 1", (target.user,))
    try:
        yield target.user
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql("ALTER USER %s@'%%' WITH MAX_USER_CONNECTIONS 0", (target.user,))
            for (thread,) in conn.exec_driver_sql(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (target.user,)
            ):
                conn.exec_driver_sql("KILL %s", (thread,))
        admin.dispose()


# The user may hold one connection only: the one that would end the session is refused, so the
# session's socket is shut instead (its query runs on until the statement timeout, then ends).


async def test_pg_refusing_a_second_connection_still_frees_the_slot(
    isolated_store: Settings, single_queue: Queue, pg_db: URL, caplog: pytest.LogCaptureFixture
) -> None:
    with pg_role_with_one_connection() as role:
        connection_id = add_pg_connection(USER, pg_db.set(username=role))
        await run_hung_job_then_another(single_queue, "test_target_sleep", {"connection_id": connection_id})
    assert "could not end a session" in caplog.text


async def test_mariadb_refusing_a_second_connection_still_frees_the_slot(
    isolated_store: Settings, single_queue: Queue, mysql_target: MySQLTarget, caplog: pytest.LogCaptureFixture
) -> None:
    with mysql_user_with_one_connection(mysql_target):
        connection_id = add_mysql_connection(USER, mysql_target)
        await run_hung_job_then_another(single_queue, "test_target_sleep", {"connection_id": connection_id})
    assert "could not end a session" in caplog.text
