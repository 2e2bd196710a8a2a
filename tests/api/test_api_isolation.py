"""Another user's job is 404 in every route, with the same body as an unknown id."""

from __future__ import annotations

import httpx
import pytest

from .support import auth

ROUTES = [
    ("GET", "/api/jobs/{id}"),
    ("GET", "/api/jobs/{id}?jobType=schema_training"),
    ("POST", "/api/jobs/{id}/cancel"),
    ("POST", "/api/jobs/{id}/retry"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_foreign_job_is_indistinguishable_from_unknown(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    bobs = (await client.post("/api/connections/b1/train-schema", headers=auth("bob"))).json()["jobId"]
    if path.endswith("/retry"):  # a retryable state, so only ownership can refuse it
        await client.post(f"/api/jobs/{bobs}/cancel", headers=auth("bob"))
    foreign = await client.request(method, path.format(id=bobs), headers=auth("alice"))
    unknown = await client.request(
        method, path.format(id="00000000-0000-0000-0000-000000000000"), headers=auth("alice")
    )
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.content == unknown.content
    # and bob's job is untouched
    assert (await client.get(f"/api/jobs/{bobs}", headers=auth("bob"))).status_code == 200


async def test_lists_and_counts_show_only_the_callers_jobs(client: httpx.AsyncClient) -> None:
    await client.post("/api/connections/b1/train-schema", headers=auth("bob"))
    assert (await client.get("/api/jobs", headers=auth("alice"))).json()["jobs"] == []
    assert (await client.get("/api/queues", headers=auth("alice"))).json()["queues"] == []
