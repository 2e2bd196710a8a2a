"""The status function's routes, through the ASGI app against real Redis."""

from __future__ import annotations

import time
from typing import Any

import httpx

from explorer_jobs.queue import Queue

from .conftest import api_settings
from .support import auth, free_port, make_app


async def _train(client: httpx.AsyncClient, user: str = "alice", connection: str = "c1") -> str:
    response = await client.post(f"/api/connections/{connection}/train-schema", headers=auth(user))
    assert response.status_code == 202
    job_id: str = response.json()["jobId"]
    return job_id


async def test_get_job(client: httpx.AsyncClient) -> None:
    job_id = await _train(client)
    job = (await client.get(f"/api/jobs/{job_id}", headers=auth())).json()
    assert job["jobId"] == job_id and job["userId"] == "alice" and job["status"] == "queued"
    assert set(job) == {
        "jobId",
        "jobType",
        "userId",
        "status",
        "progress",
        "message",
        "priority",
        "attempts",
        "maxAttempts",
        "data",
        "result",
        "error",
        "createdAt",
        "startedAt",
        "finishedAt",
    }
    assert job["createdAt"].endswith("Z") and job["startedAt"] is None
    typed = await client.get(f"/api/jobs/{job_id}", params={"jobType": "schema_training"}, headers=auth())
    assert typed.status_code == 200
    wrong = await client.get(f"/api/jobs/{job_id}", params={"jobType": "test_echo"}, headers=auth())
    unknown = await client.get("/api/jobs/no-such-job", headers=auth())
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.json() == unknown.json()


async def test_list_jobs_pages_newest_first(client: httpx.AsyncClient) -> None:
    ids = [await _train(client) for _ in range(5)]
    first = (await client.get("/api/jobs", params={"limit": 2}, headers=auth())).json()
    assert [j["jobId"] for j in first["jobs"]] == ids[::-1][:2]
    seen = [j["jobId"] for j in first["jobs"]]
    cursor = first["nextCursor"]
    while cursor is not None:
        page = (await client.get("/api/jobs", params={"limit": 2, "cursor": cursor}, headers=auth())).json()
        seen += [j["jobId"] for j in page["jobs"]]
        cursor = page["nextCursor"]
    assert seen == ids[::-1]
    default = (await client.get("/api/jobs", headers=auth())).json()
    assert len(default["jobs"]) == 5 and default["nextCursor"] is None


async def test_list_filters(client: httpx.AsyncClient) -> None:
    keep, gone = await _train(client), await _train(client)
    await client.post(f"/api/jobs/{gone}/cancel", headers=auth())
    queued = (await client.get("/api/jobs", params={"status": "queued"}, headers=auth())).json()
    assert [j["jobId"] for j in queued["jobs"]] == [keep]
    typed = (await client.get("/api/jobs", params={"jobType": "schema_training"}, headers=auth())).json()
    assert len(typed["jobs"]) == 2


async def test_list_rejects_bad_filters(client: httpx.AsyncClient) -> None:
    for params in (
        {"status": "sleeping"},
        {"jobType": "no_such_type"},
        {"limit": 0},
        {"limit": 101},
        {"limit": "many"},
        {"cursor": "abc"},
    ):
        response = await client.get("/api/jobs", params=params, headers=auth())
        assert response.status_code == 422, params
    assert (await client.get("/api/jobs", params={"limit": 100}, headers=auth())).status_code == 200


async def test_queue_counts_own_and_admin(client: httpx.AsyncClient) -> None:
    await _train(client)
    await _train(client, "bob", "b1")
    await _train(client, "bob", "b1")

    def queued(body: dict[str, Any]) -> int:
        (entry,) = [q for q in body["queues"] if q["jobType"] == "schema_training"]
        assert set(entry["counts"]) == {"queued", "delayed", "active", "completed", "failed", "cancelled"}
        count: int = entry["counts"]["queued"]
        return count

    assert queued((await client.get("/api/queues", headers=auth())).json()) == 1
    assert queued((await client.get("/api/queues", headers=auth("bob"))).json()) == 2
    admin = (await client.get("/api/queues", headers=auth("root", roles=["admin"]))).json()
    assert queued(admin) == 3


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"redis": "ok", "store": "ok"}


async def test_healthz_is_503_fast_when_redis_is_down() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    app = make_app(api_settings(REDIS_URL=dead, HEALTH_TIMEOUT_SECONDS=0.5))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        began = time.monotonic()
        response = await client.get("/healthz")
        elapsed = time.monotonic() - began
        assert response.status_code == 503
        assert response.json()["checks"]["redis"] == "down"
        assert elapsed < 3.0  # the bound is the check's timeout, not Redis's retries
        # Routes that need Redis answer 503 too, never 500.
        assert (await client.get("/api/jobs", headers=auth())).status_code == 503


async def test_job_made_by_the_queue_reads_back(client: httpx.AsyncClient, queue: Queue) -> None:
    made = await queue.enqueue("schema_training", {"connectionId": "c9"}, user_id="alice")
    job = (await client.get(f"/api/jobs/{made.job.job_id}", headers=auth())).json()
    assert job["data"]["connectionId"] == "c9"
