"""A credential canary: connections saved with a random password, to PostgreSQL (trust auth ignores
it, so training still works) and to MariaDB (a login that needs it), trained by a real worker in
`explorer-jobs dev` (API, SSE gateway and worker; every log line at DEBUG), and the ways it goes
wrong: a wrong password, a closed port, a server that never answers (a timeout, then a retry).
Afterwards the password is nowhere: not in any API response (errors included), not on the event
stream, not in any log line, not in any Redis key or value of any type, not in any file the stack
wrote (the store keeps it encrypted).

The canary's random core is what is searched for: it survives URL-encoding, JSON and repr, so a
password that leaked in any of those forms is still found.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import redis

from tests.dashboard.stack import DevStack
from tests.support.databases import (
    MYSQL_ADMIN_URL,
    admin_engine,
    mysql_ident,
    run_sql,
    throwaway_mysql_databases,
    throwaway_pg_database,
    unique_name,
)
from tests.support.fixtures import ThrowawayRedisFactory

from .support import every_value

CORE = secrets.token_hex(12)
# Characters that break a URL pasted together by hand, around the core that is searched for.
CANARY = f"c@n:ary/{CORE} p%ss#"
STREAM = "/api/jobs/notifications/stream"
EVENTS_WITHIN = 60.0


@pytest.fixture
def stack(tmp_path: Path, throwaway_redis: ThrowawayRedisFactory) -> Iterator[tuple[DevStack, redis.Redis]]:
    """`explorer-jobs dev` on a Redis server of its own (so every key in it is the stack's)."""
    server = throwaway_redis()
    home = tmp_path / "home"
    home.mkdir()
    dev = DevStack(home)
    dev.env.update(REDIS_URL=server.url, LOG_LEVEL="DEBUG", TARGET_CONNECT_TIMEOUT_SECONDS="1")
    dev.start()
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        yield dev, client
    finally:
        client.close()
        dev.stop()


@pytest.fixture
def pg_url() -> Iterator[Any]:
    with throwaway_pg_database() as url:
        run_sql(url, "CREATE TABLE orders (id int PRIMARY KEY, total numeric(10, 2))")
        yield url


@pytest.fixture
def maria_login() -> Iterator[tuple[str, str]]:
    """A MariaDB database and a login to it whose password is the canary."""
    with throwaway_mysql_databases("canary") as (database,):
        user = unique_name("ej_u")
        admin = admin_engine(MYSQL_ADMIN_URL)
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE TABLE {mysql_ident(database)}.orders (id int PRIMARY KEY)")
            conn.exec_driver_sql("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, CANARY))
            conn.exec_driver_sql(f"GRANT SELECT ON {mysql_ident(database)}.* TO %s@'%%'", (user,))
        try:
            yield database, user
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql("DROP USER IF EXISTS %s@'%%'", (user,))
            admin.dispose()


@dataclass
class Recorder:
    """Every answer the API gave, and every line of the event stream, as the client saw them."""

    http: httpx.AsyncClient
    answers: list[str] = field(default_factory=list)
    stream_lines: list[str] = field(default_factory=list)
    events: dict[str, set[str]] = field(default_factory=dict)  # jobId -> the event types seen
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    async def call(self, method: str, path: str, expect: int, **kwargs: Any) -> Any:
        answer = await self.http.request(method, path, **kwargs)
        self.answers.append(f"{answer.status_code} {answer.headers} {answer.text}")
        assert answer.status_code == expect, (method, path, answer.text)
        return answer.json() if answer.content else None

    async def follow(self, ticket: str) -> None:
        async with self.http.stream("GET", STREAM, params={"ticket": ticket}) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                self.opened.set()  # the first line, `retry:`: subscribed from here on
                self.stream_lines.append(line)
                if line.startswith("data: "):
                    event = json.loads(line[6:])
                    self.events.setdefault(event["jobId"], set()).add(event["type"])
                    self.arrived.set()

    async def saw(self, job_id: str, event_type: str) -> None:
        async with asyncio.timeout(EVENTS_WITHIN):
            while event_type not in self.events.get(job_id, ()):
                self.arrived.clear()
                await self.arrived.wait()


def connection(
    name: str, dialect: str, port: int, database: str, username: str, password: str
) -> dict[str, Any]:
    return {
        "name": name,
        "dialect": dialect,
        "host": "127.0.0.1",
        "port": port,
        "database": database,
        "username": username,
        "password": password,
        "trainingSchedule": None,  # nothing scheduled meanwhile
    }


async def exercise(api: Recorder, body: dict[str, Any], works: bool = False) -> str:
    """Save, read, test and list a connection, then queue its training; the job id."""
    cid = (await api.call("POST", "/api/connections", 201, json=body))["id"]
    await api.call("GET", f"/api/connections/{cid}", 200)
    await api.call("POST", f"/api/connections/{cid}/test", 200 if works else 502)
    await api.call("GET", f"/api/connections/{cid}/schemas", 200 if works else 502)
    job_id: str = (await api.call("POST", f"/api/connections/{cid}/train-schema", 202))["jobId"]
    return job_id


async def test_the_password_is_nowhere(
    stack: tuple[DevStack, redis.Redis], pg_url: Any, maria_login: tuple[str, str], black_hole: int
) -> None:
    dev, store = stack
    token = jwt.encode(
        {"sub": "alice", "exp": int(time.time()) + 600}, dev.env["JWT_SECRET"], algorithm="HS256"
    )
    maria_db, maria_user = maria_login
    pg = ("postgresql", pg_url.port or 5432, pg_url.database, pg_url.username)
    maria = ("mysql", MYSQL_ADMIN_URL.port or 3306, maria_db, maria_user)
    async with httpx.AsyncClient(
        base_url=dev.base, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as http:
        api = Recorder(http)
        ticket = (await api.call("POST", "/api/jobs/notifications/ticket", 200))["ticket"]
        follower = asyncio.create_task(api.follow(ticket))
        try:
            await asyncio.wait_for(api.opened.wait(), EVENTS_WITHIN)
            trained = {
                await exercise(api, connection("pg", *pg, CANARY), works=True): "job_completed",
                await exercise(api, connection("maria", *maria, CANARY), works=True): "job_completed",
                # Refused by the server: its message, and a training that fails at once.
                await exercise(api, connection("maria, wrong", *maria, CANARY + "-wrong")): "job_failed",
                # Nothing listens on port 1: the driver's own error; the training fails at once.
                await exercise(api, connection("closed", "postgresql", 1, "x", "x", CANARY)): "job_failed",
                # A server that never answers: a timeout, and a training that will retry.
                await exercise(
                    api, connection("silent", "postgresql", black_hole, "x", "x", CANARY)
                ): "job_retrying",
            }
            for job_id, event_type in trained.items():
                await api.saw(job_id, event_type)
                job = await api.call("GET", f"/api/jobs/{job_id}", 200)
                if event_type == "job_completed":
                    await api.call("GET", f"/api/connections/{job['data']['connectionId']}/schema-cache", 200)
                if event_type == "job_retrying":
                    await api.call("POST", f"/api/jobs/{job_id}/cancel", 202)
                    await api.saw(job_id, "job_cancelled")
            for path in ("/api/jobs", "/api/connections", "/api/queues"):
                await api.call("GET", path, 200)
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
    dev.stop()  # every log line written

    assert CORE not in "\n".join(api.answers)
    assert any(line.startswith("data: ") and "Access denied" in line for line in api.stream_lines)
    assert CORE not in "\n".join(api.stream_lines)

    log = dev.log.read_text(errors="replace")
    # Captured at every level, the API's lines and the worker's both.
    assert " DEBUG " in log and "answering 502" in log
    assert "failed permanently" in log and "attempt 1 failed" in log
    assert CORE not in log

    kinds = set()
    for key, kind, value in every_value(store):
        kinds.add(kind)
        assert CORE not in key and CORE not in value, key
    assert {"hash", "zset", "stream", "string"} <= kinds

    for path in dev.home.rglob("*"):
        if path.is_file():
            assert CORE.encode() not in path.read_bytes(), path
