"""The enqueue function's routes, through the ASGI app against real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import redis

from explorer_jobs.api.connection_lookup import OWNER_TTL_SECONDS, connection_lookup
from explorer_jobs.errors import NotFound
from explorer_jobs.keys import ticket_key
from explorer_jobs.queue import Queue
from explorer_jobs.settings import Settings

from .conftest import api_settings
from .support import auth, make_app

TRAIN = "/api/connections/c1/train-schema"


async def test_train_schema_queues_a_job(client: httpx.AsyncClient, queue: Queue) -> None:
    body = {
        "schemas": ["public"],
        "tables": {"public": ["users"]},
        "options": {"includeIndexes": False},
        "priority": 2,
    }
    response = await client.post(TRAIN, json=body, headers=auth())
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["jobType"] == "schema_training" and accepted["status"] == "queued"
    assert response.headers["location"] == f"/api/jobs/{accepted['jobId']}"
    job = await queue.get(accepted["jobId"], user_id="alice")
    assert job.priority == 2
    assert job.data["connectionId"] == "c1"
    assert job.data["tables"] == {"public": ["users"]}
    assert job.data["options"]["includeIndexes"] is False


async def test_train_schema_without_a_body(client: httpx.AsyncClient, queue: Queue) -> None:
    response = await client.post(TRAIN, headers=auth())
    assert response.status_code == 202
    assert (await queue.get(response.json()["jobId"])).priority == 5


async def test_unknown_or_foreign_connection_is_404(client: httpx.AsyncClient) -> None:
    unknown = await client.post("/api/connections/nope/train-schema", headers=auth())
    foreign = await client.post("/api/connections/b1/train-schema", headers=auth())  # bob's
    assert unknown.status_code == foreign.status_code == 404
    assert unknown.json() == foreign.json()


async def test_idempotency_key(client: httpx.AsyncClient, clean_redis: redis.Redis) -> None:
    headers = {**auth(), "Idempotency-Key": "k-1"}
    first = await client.post(TRAIN, json={"schemas": ["a"]}, headers=headers)
    again = await client.post(TRAIN, json={"schemas": ["a"]}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["jobId"] == again.json()["jobId"]
    other_body = await client.post(TRAIN, json={"schemas": ["b"]}, headers=headers)
    assert other_body.status_code == 409
    # The key is per user: bob's same key queues his own job.
    bob = await client.post(
        "/api/connections/b1/train-schema",
        json={"schemas": ["a"]},
        headers={**auth("bob"), "Idempotency-Key": "k-1"},
    )
    assert bob.status_code == 202 and bob.json()["jobId"] != first.json()["jobId"]


@pytest.mark.parametrize(
    "body",
    [
        {"priority": 0},
        {"priority": 11},
        {"priority": "high"},
        {"priority": 2.5},
        {"unknown": 1},
        {"schemas": "public"},
        {"options": {"includeColor": True}},
        {"tables": {"public": "users"}},
        [],
        "x",
    ],
)
async def test_bad_bodies_are_422(client: httpx.AsyncClient, body: object) -> None:
    response = await client.post(TRAIN, json=body, headers=auth())
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        TRAIN, content=b'{"priority": ', headers={**auth(), "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "detail" in response.json()


async def test_body_over_one_mib_is_413(client: httpx.AsyncClient) -> None:
    big = b'{"schemas": ["' + b"x" * (1 << 20) + b'"]}'
    declared = await client.post(TRAIN, content=big, headers={**auth(), "Content-Type": "application/json"})
    assert declared.status_code == 413 and "detail" in declared.json()

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(3):
            yield b" " * (512 * 1024)

    streamed = await client.post(
        TRAIN, content=chunks(), headers={**auth(), "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413 and "detail" in streamed.json()


async def test_bad_idempotency_key_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(TRAIN, headers={**auth(), "Idempotency-Key": "x" * 500})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["header", "Idempotency-Key"] and error["type"] == "string_too_long"
    for bad in ("", "a b", "k\u00e9"):
        response = await client.post(TRAIN, headers={**auth(), "Idempotency-Key": bad.encode()})
        assert response.status_code == 422, bad
        assert response.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]


async def test_train_schema_checks_its_hand_read_parameters_like_declared_ones(
    client: httpx.AsyncClient, clean_redis: redis.Redis
) -> None:
    # The route reads its path id, header and caller itself (api/request_params.py): the same
    # answers as the routes whose parameters FastAPI reads, and nothing queued on a refusal.
    too_long = await client.post(f"/api/connections/{'c' * 201}/train-schema", headers=auth())
    assert too_long.status_code == 422
    assert too_long.json()["detail"][0]["loc"] == ["path", "id"]
    unauthenticated = await client.post(TRAIN)
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["www-authenticate"] == "Bearer"
    wrong_scheme = await client.post(TRAIN, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert wrong_scheme.status_code == 401
    assert not [key for key in clean_redis.scan_iter("*job:*")]


def test_train_schema_documents_its_hand_read_parameters() -> None:
    paths = make_app(api_settings(), set()).openapi()["paths"]
    operation = paths["/api/connections/{id}/train-schema"]["post"]
    assert operation["security"] == [{"HTTPBearer": []}]
    parameters = {(p["in"], p["name"]): p for p in operation["parameters"]}
    assert parameters.keys() == {("path", "id"), ("header", "Idempotency-Key")}
    assert parameters["path", "id"]["required"] is True
    assert parameters["path", "id"]["schema"]["maxLength"] == 200
    key_schema = parameters["header", "Idempotency-Key"]["schema"]["anyOf"][0]
    assert key_schema["maxLength"] == 200 and key_schema["pattern"] == r"^[\x21-\x7e]+$"
    body_schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema["anyOf"][0] == {"$ref": "#/components/schemas/TrainSchemaRequest"}
    components = make_app(api_settings(), set()).openapi()["components"]["schemas"]
    assert components["TrainSchemaRequest"]["properties"]["options"]["anyOf"][0] == {
        "$ref": "#/components/schemas/TrainingOptions"
    }
    assert "includeIndexes" in components["TrainingOptions"]["properties"]


async def test_enqueue_rate_limit() -> None:
    app = make_app(api_settings(ENQUEUE_RATE_LIMIT=2, ENQUEUE_RATE_WINDOW_SECONDS=60), {("alice", "c1")})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        codes = [(await client.post(TRAIN, headers=auth())).status_code for _ in range(3)]
        assert codes == [202, 202, 429]
        limited = await client.post(TRAIN, headers=auth())
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert "detail" in limited.json()
        # Per user: bob is not limited by alice's requests.
        assert (await client.post("/api/jobs/x/retry", headers=auth("bob"))).status_code == 404


async def test_cancel_and_retry(client: httpx.AsyncClient, queue: Queue) -> None:
    job_id = (await client.post(TRAIN, headers=auth())).json()["jobId"]
    assert (await client.post(f"/api/jobs/{job_id}/retry", headers=auth())).status_code == 409  # queued
    cancelled = await client.post(f"/api/jobs/{job_id}/cancel", headers=auth())
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["jobId"] == job_id
    again = await client.post(f"/api/jobs/{job_id}/cancel", headers=auth())
    assert again.status_code == 409 and "detail" in again.json()
    retried = await client.post(f"/api/jobs/{job_id}/retry", headers=auth())
    assert retried.status_code == 202
    assert retried.json()["status"] == "queued" and retried.json()["jobId"] == job_id
    assert (await queue.get(job_id)).status == "queued"


async def test_ticket(client: httpx.AsyncClient, clean_redis: redis.Redis) -> None:
    response = await client.post("/api/jobs/notifications/ticket", headers=auth())
    assert response.status_code == 200
    body = response.json()
    assert body["expiresIn"] == 30 and len(body["ticket"]) >= 40
    key = ticket_key("ej", body["ticket"])
    assert clean_redis.get(key) == "alice"
    assert 0 < clean_redis.ttl(key) <= 30


async def test_train_and_retry_share_one_rate_limit_allowance() -> None:
    app = make_app(api_settings(ENQUEUE_RATE_LIMIT=2, ENQUEUE_RATE_WINDOW_SECONDS=60), {("alice", "c1")})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        job_id = (await client.post(TRAIN, headers=auth())).json()["jobId"]
        assert (await client.post(f"/api/jobs/{job_id}/cancel", headers=auth())).status_code == 202
        assert (await client.post(f"/api/jobs/{job_id}/retry", headers=auth())).status_code == 202
        # Two enqueues counted (a train, a retry): the window is spent for both routes.
        assert (await client.post(TRAIN, headers=auth())).status_code == 429


class CountingLookup:
    """The connections store as the enqueue route sees it, counting the questions it is asked."""

    def __init__(self, owned: set[tuple[str, str]]) -> None:
        self.owned = owned
        self.asked: list[tuple[str, str]] = []

    async def __call__(self, user_id: str, connection_id: str) -> None:
        self.asked.append((user_id, connection_id))
        if (user_id, connection_id) not in self.owned:
            raise NotFound("connection not found")


@pytest.fixture
async def counted(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, CountingLookup]]:
    lookup = CountingLookup({("alice", "c1")})
    app = make_app(settings)
    app.dependency_overrides[connection_lookup] = lambda: lookup
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        yield client, lookup


async def test_the_owner_is_asked_once_then_read_from_redis(
    counted: tuple[httpx.AsyncClient, CountingLookup], queue: Queue, clean_redis: redis.Redis
) -> None:
    client, lookup = counted
    for _ in range(3):
        assert (await client.post(TRAIN, headers=auth())).status_code == 202
    assert lookup.asked == [("alice", "c1")]
    key = queue.keys.connection_owner("c1")
    assert clean_redis.get(key) == "alice"
    assert 0 < clean_redis.ttl(key) <= OWNER_TTL_SECONDS
    # Someone else naming the connection is asked about, refused, and changes nothing.
    assert (await client.post(TRAIN, headers=auth("bob"))).status_code == 404
    assert lookup.asked[-1] == ("bob", "c1") and clean_redis.get(key) == "alice"
    [counts] = await queue.counts("alice")
    assert counts.counts["queued"] == 3 and await queue.counts("bob") == []


async def test_a_store_miss_is_not_counted_twice_by_the_rate_limit(
    counted: tuple[httpx.AsyncClient, CountingLookup],
    settings: Settings,
) -> None:
    client, lookup = counted
    settings.ENQUEUE_RATE_LIMIT = 1
    # The first request is refused by the cached-owner check (nothing counted), asks the store,
    # then queues (counted once): the allowance of one is spent only now.
    assert (await client.post(TRAIN, headers=auth())).status_code == 202
    assert (await client.post(TRAIN, headers=auth())).status_code == 429
    assert lookup.asked == [("alice", "c1")]
