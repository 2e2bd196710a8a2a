"""Another user's ids, in every route that takes one, over the real store: 404 with the very body an
unknown id gets, and the owner's things untouched. The event stream carries only the caller's
events, whichever door it was opened by, and a ticket opens its own user's stream and no one else's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis

from explorer_jobs.settings import Settings
from explorer_jobs.store.schema_caches import save_schema_cache
from tests.api.support import LiveServer, auth, open_stream

STREAM = "/api/jobs/notifications/stream"
UNKNOWN = "00000000-0000-0000-0000-000000000000"
# Nothing is connected to: a foreign id must be refused before any connection is tried.
TARGET = {"dialect": "postgresql", "host": "127.0.0.1", "port": 1, "database": "d", "username": "u"}

# (method, path, which of bob's ids): each route that names a job or a connection.
ROUTES = [
    ("GET", "/api/jobs/{id}", "queued"),
    ("GET", "/api/jobs/{id}?jobType=schema_training", "queued"),
    ("POST", "/api/jobs/{id}/cancel", "queued"),
    ("POST", "/api/jobs/{id}/retry", "cancelled"),  # retryable: only ownership can refuse it
    ("GET", "/api/connections/{id}", "connection"),
    ("DELETE", "/api/connections/{id}", "connection"),
    ("POST", "/api/connections/{id}/test", "connection"),
    ("GET", "/api/connections/{id}/schemas", "connection"),
    ("GET", "/api/connections/{id}/schema-cache", "connection"),
    ("DELETE", "/api/connections/{id}/schema-cache", "connection"),
    ("POST", "/api/connections/{id}/train-schema", "connection"),
]


@dataclass
class Owned:
    """One user's connection (with a schema cache), a queued training and a cancelled one."""

    user: str
    connection: str
    queued: str
    cancelled: str


async def own_things(http: httpx.AsyncClient, user: str) -> Owned:
    headers = auth(user)
    created = await http.post("/api/connections", json={"name": user, **TARGET}, headers=headers)
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    save_schema_cache(cid, None, {}, lambda _previous: ([{"name": "s", "tables": []}], {}))
    queued = (await http.post(f"/api/connections/{cid}/train-schema", headers=headers)).json()["jobId"]
    cancelled = (
        await http.post(f"/api/connections/{cid}/train-schema", json={"schemas": ["s"]}, headers=headers)
    ).json()["jobId"]
    assert (await http.post(f"/api/jobs/{cancelled}/cancel", headers=headers)).status_code == 202
    return Owned(user, cid, queued, cancelled)


async def snapshot(http: httpx.AsyncClient, owned: Owned) -> dict[str, Any]:
    """What the owner sees of their things (times of reading excluded)."""
    headers = auth(owned.user)
    jobs = (await http.get("/api/jobs", headers=headers)).json()["jobs"]
    return {
        "connection": (await http.get(f"/api/connections/{owned.connection}", headers=headers)).json(),
        "cache": (
            await http.get(f"/api/connections/{owned.connection}/schema-cache", headers=headers)
        ).json(),
        "jobs": {job["jobId"]: (job["status"], job["attempts"]) for job in jobs},
        "queues": (await http.get("/api/queues", headers=headers)).json(),
    }


@pytest.mark.parametrize(("method", "path", "which"), ROUTES)
async def test_a_foreign_id_is_indistinguishable_from_an_unknown_one(
    http: httpx.AsyncClient, method: str, path: str, which: str
) -> None:
    bobs = await own_things(http, "bob")
    before = await snapshot(http, bobs)
    foreign = await http.request(method, path.format(id=getattr(bobs, which)), headers=auth("alice"))
    unknown = await http.request(method, path.format(id=UNKNOWN), headers=auth("alice"))
    assert foreign.status_code == unknown.status_code == 404, (foreign.text, unknown.text)
    assert foreign.content == unknown.content
    assert foreign.headers["content-type"] == unknown.headers["content-type"]
    # Nothing of bob's moved: no job cancelled, retried or added, no cache or connection dropped.
    assert await snapshot(http, bobs) == before
    assert (await http.get("/api/jobs", headers=auth("alice"))).json()["jobs"] == []


async def test_lists_and_counts_show_only_the_callers_own(http: httpx.AsyncClient) -> None:
    await own_things(http, "bob")
    alice = auth("alice")
    assert (await http.get("/api/connections", headers=alice)).json() == {"connections": []}
    assert (await http.get("/api/jobs", headers=alice)).json()["jobs"] == []
    assert (await http.get("/api/queues", headers=alice)).json()["queues"] == []


async def test_idempotency_keys_are_per_user_even_when_user_ids_hold_colons(http: httpx.AsyncClient) -> None:
    # "alice" with key "x:y" and "alice:x" with key "y" must not share a key: neither may see the
    # other's job id, nor be refused (409) because the other used "their" key first.
    first = await own_things(http, "alice")
    second = await own_things(http, "alice:x")
    a = await http.post(
        f"/api/connections/{first.connection}/train-schema",
        headers={**auth("alice"), "Idempotency-Key": "x:y"},
    )
    b = await http.post(
        f"/api/connections/{second.connection}/train-schema",
        headers={**auth("alice:x"), "Idempotency-Key": "y"},
    )
    assert a.status_code == b.status_code == 202, (a.text, b.text)
    assert a.json()["jobId"] != b.json()["jobId"]


def job_of(event: Any) -> str:
    return str(json.loads(event.data)["jobId"])


async def test_another_users_events_never_reach_a_client(live: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
        ticket = (await http.post("/api/jobs/notifications/ticket", headers=auth("alice"))).json()["ticket"]
        async with (
            open_stream(http, STREAM, headers=auth("alice")) as by_header,
            open_stream(http, STREAM, params={"ticket": ticket}) as by_ticket,
            open_stream(http, STREAM, headers=auth("bob")) as bobs_stream,
        ):
            bobs = await own_things(http, "bob")  # queued, queued, cancelled: bob's three events
            await http.post(f"/api/jobs/{bobs.cancelled}/retry", headers=auth("bob"))  # and a fourth
            alices = await own_things(http, "alice")  # queued, queued, cancelled
            # Bob's events came first: had any reached alice, it would be her first.
            assert job_of(await by_header.next()) == alices.queued
            assert job_of(await by_ticket.next()) == alices.queued
            assert {job_of(e) for e in await bobs_stream.take(4)} == {bobs.queued, bobs.cancelled}
        # A replay from the very start, and a long poll, are alice's own stream too.
        mine = {alices.queued, alices.cancelled}
        async with open_stream(http, STREAM, headers={**auth("alice"), "Last-Event-ID": "0-0"}) as replay:
            assert {job_of(e) for e in await replay.take(3)} == mine
        polled = await http.get(STREAM, params={"mode": "poll", "lastEventId": "0-0"}, headers=auth("alice"))
        ids = [
            json.loads(line[6:])["jobId"] for line in polled.text.splitlines() if line.startswith("data: ")
        ]
        assert ids and set(ids) <= mine


async def test_a_ticket_opens_its_own_users_stream_only(
    live: LiveServer, settings: Settings, attack_redis: redis.Redis
) -> None:
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
        ticket = (await http.post("/api/jobs/notifications/ticket", headers=auth("alice"))).json()["ticket"]
        ttl = attack_redis.ttl(f"{settings.KEY_PREFIX}:ticket:{ticket}")
        assert 0 < ttl <= settings.SSE_TICKET_TTL_SECONDS  # short-lived
        # Bob presenting alice's ticket alongside his own token gets his own stream, not hers.
        async with open_stream(http, STREAM, headers=auth("bob"), params={"ticket": ticket}) as bobs_view:
            alices = (await own_things(http, "alice")).queued
            bobs = (await own_things(http, "bob")).queued
            assert job_of(await bobs_view.next()) == bobs
        # The ticket alone opens alice's stream, once.
        async with open_stream(http, STREAM, params={"ticket": ticket, "lastEventId": "0-0"}) as alices_view:
            assert job_of(await alices_view.next()) == alices
        assert (await http.get(STREAM, params={"ticket": ticket})).status_code == 401
