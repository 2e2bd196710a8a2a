"""The connections routes over the real store, the real PostgreSQL and the real Redis: create,
read, test, live schemas, the schema cache, delete (which cancels the connection's trainings),
and a password canary that must never come back out."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import redis

from explorer_jobs.api.clients import close_clients
from explorer_jobs.api.combined import create_combined_app
from explorer_jobs.processors import PROCESSORS, load_builtin_processors
from explorer_jobs.queue import Queue
from explorer_jobs.settings import Settings, get_settings
from explorer_jobs.worker import Worker
from tests.support.databases import isolated_store, run_sql, throwaway_pg_database  # noqa: F401
from tests.support.events import has_event, wait_for_events

from .support import REDIS_URL, auth

CANARY = "canary-" + secrets.token_hex(8)


@pytest.fixture
def pg_target() -> Iterator[dict[str, Any]]:
    with throwaway_pg_database() as url:
        run_sql(
            url,
            "CREATE SCHEMA sales; CREATE TABLE sales.orders (id int PRIMARY KEY, total numeric(10, 2));"
            "CREATE TABLE public.users (id int PRIMARY KEY, email text UNIQUE)",
        )
        # Trust authentication ignores the password: the canary travels everywhere a real one would.
        yield {
            "name": "pg",
            "dialect": "postgresql",
            "host": "127.0.0.1",
            "port": url.port or 5432,
            "database": url.database,
            "username": url.username,
            "password": CANARY,
        }


@pytest.fixture
async def http(isolated_store: Settings, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:  # noqa: F811
    app = create_combined_app()  # the real connection lookup: the store
    app.dependency_overrides[get_settings] = lambda: settings
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        yield client
    await close_clients()


async def test_create_read_and_no_password_anywhere(
    http: httpx.AsyncClient, pg_target: dict[str, Any], clean_redis: redis.Redis
) -> None:
    created = await http.post("/api/connections", json=pg_target, headers=auth("alice"))
    assert created.status_code == 201, created.text
    body = created.json()
    assert set(body) == {
        "id",
        "name",
        "dialect",
        "host",
        "port",
        "database",
        "username",
        "trainingSchedule",
        "createdAt",
        "lastTrainedAt",
    }
    assert body["trainingSchedule"] == "0 2 * * 0" and body["lastTrainedAt"] is None
    cid = body["id"]
    listed = await http.get("/api/connections", headers=auth("alice"))
    assert [c["id"] for c in listed.json()["connections"]] == [cid]
    assert (await http.get(f"/api/connections/{cid}", headers=auth("alice"))).json() == body
    theirs = await http.get(f"/api/connections/{cid}", headers=auth("bob"))
    unknown = await http.get("/api/connections/nope", headers=auth("bob"))
    assert theirs.status_code == unknown.status_code == 404 and theirs.json() == unknown.json()
    assert (await http.get("/api/connections", headers=auth("bob"))).json() == {"connections": []}
    for text in (created.text, listed.text):
        assert CANARY not in text


@pytest.mark.parametrize(
    "change",
    [
        {"dialect": "oracle"},
        {"host": ""},
        {"port": 70000},
        {"trainingSchedule": "every sunday"},
        {"host": "169.254.169.254"},
        {"extra": 1},
    ],
)
async def test_bad_connections_are_422_and_change_nothing(
    http: httpx.AsyncClient, pg_target: dict[str, Any], change: dict[str, Any]
) -> None:
    answer = await http.post("/api/connections", json=pg_target | change, headers=auth("alice"))
    assert answer.status_code == 422, answer.text
    assert CANARY not in answer.text
    assert (await http.get("/api/connections", headers=auth("alice"))).json() == {"connections": []}


async def test_test_and_schemas_against_a_real_database(
    http: httpx.AsyncClient, pg_target: dict[str, Any]
) -> None:
    cid = (await http.post("/api/connections", json=pg_target, headers=auth("alice"))).json()["id"]
    tested = await http.post(f"/api/connections/{cid}/test", headers=auth("alice"))
    assert tested.status_code == 200 and tested.json()["ok"] is True and tested.json()["latencyMs"] >= 0
    schemas = (await http.get(f"/api/connections/{cid}/schemas", headers=auth("alice"))).json()["schemas"]
    assert {s["name"]: s["tables"] for s in schemas} == {"public": ["users"], "sales": ["orders"]}
    assert (await http.post(f"/api/connections/{cid}/test", headers=auth("bob"))).status_code == 404


async def test_an_unreachable_database_is_502_with_a_clear_message(
    http: httpx.AsyncClient, pg_target: dict[str, Any]
) -> None:
    closed = pg_target | {"port": 1}  # nothing listens there
    cid = (await http.post("/api/connections", json=closed, headers=auth("alice"))).json()["id"]
    for answer in (
        await http.post(f"/api/connections/{cid}/test", headers=auth("alice")),
        await http.get(f"/api/connections/{cid}/schemas", headers=auth("alice")),
    ):
        assert answer.status_code == 502
        assert "connect" in answer.json()["detail"].lower() and CANARY not in answer.text


async def test_train_read_and_drop_the_schema_cache(
    http: httpx.AsyncClient, pg_target: dict[str, Any], settings: Settings
) -> None:
    cid = (await http.post("/api/connections", json=pg_target, headers=auth("alice"))).json()["id"]
    assert (await http.get(f"/api/connections/{cid}/schema-cache", headers=auth("alice"))).status_code == 404
    queued = await http.post(
        f"/api/connections/{cid}/train-schema", json={"schemas": ["sales", "nope"]}, headers=auth("alice")
    )
    assert queued.status_code == 202, queued.text
    job_id = queued.json()["jobId"]
    load_builtin_processors()
    from explorer_jobs.redis_client import create_redis

    client = create_redis(REDIS_URL)
    queue = Queue(client, settings)
    worker = Worker(queue, processors=PROCESSORS)
    task = asyncio.create_task(worker.run())
    try:
        events = await wait_for_events(queue, "alice", has_event(job_id, "job_completed"), timeout=30)
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
        await client.aclose()
    done = next(e for e in events if e["type"] == "job_completed")
    assert done["result"]["missing"]["schemas"] == ["nope"]
    cache = (await http.get(f"/api/connections/{cid}/schema-cache", headers=auth("alice"))).json()
    assert cache["jobId"] == job_id and [s["name"] for s in cache["schemas"]] == ["sales"]
    assert cache["schemas"][0]["tables"][0]["primaryKey"]["columns"] == ["id"]
    assert (await http.get(f"/api/connections/{cid}/schema-cache", headers=auth("bob"))).status_code == 404
    assert (
        await http.delete(f"/api/connections/{cid}/schema-cache", headers=auth("alice"))
    ).status_code == 204
    assert (await http.get(f"/api/connections/{cid}/schema-cache", headers=auth("alice"))).status_code == 404
    # Where the password must never be (Redis, logs, events, answers): tests/attacks/test_attack_canary.py.


async def test_deleting_a_connection_cancels_its_trainings(
    http: httpx.AsyncClient, pg_target: dict[str, Any], settings: Settings
) -> None:
    cid = (await http.post("/api/connections", json=pg_target, headers=auth("alice"))).json()["id"]
    job_id = (await http.post(f"/api/connections/{cid}/train-schema", headers=auth("alice"))).json()["jobId"]
    # The owner is cached in Redis now: it answers alice, not bob.
    assert (await http.post(f"/api/connections/{cid}/train-schema", headers=auth("bob"))).status_code == 404
    assert (await http.delete(f"/api/connections/{cid}", headers=auth("bob"))).status_code == 404
    assert (await http.delete(f"/api/connections/{cid}", headers=auth("alice"))).status_code == 204
    job = (await http.get(f"/api/jobs/{job_id}", headers=auth("alice"))).json()
    assert job["status"] == "cancelled"
    assert (await http.get(f"/api/connections/{cid}", headers=auth("alice"))).status_code == 404
    assert (await http.post(f"/api/connections/{cid}/train-schema", headers=auth("alice"))).status_code == 404
