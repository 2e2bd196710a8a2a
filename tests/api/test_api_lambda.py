"""The Mangum handlers, invoked with API Gateway HTTP API (v2) events as Lambda would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import redis

from explorer_jobs.api.clients import close_clients
from explorer_jobs.api.combined import load_function
from explorer_jobs.api.connection_lookup import connection_lookup
from explorer_jobs.api.sse.registry import close_hubs
from explorer_jobs.errors import NotFound
from explorer_jobs.settings import Settings, get_settings

from .conftest import api_settings
from .support import make_token

EVENTS = Path(__file__).resolve().parent.parent / "events"
CONTEXT = SimpleNamespace(
    function_name="test", aws_request_id="req-1", get_remaining_time_in_millis=lambda: 30_000
)


def load_event(name: str, **values: str) -> dict[str, Any]:
    text = (EVENTS / name).read_text()
    for key, value in {"TOKEN": make_token("alice"), **values}.items():
        text = text.replace("${" + key + "}", value)
    event: dict[str, Any] = json.loads(text)
    return event


async def _known_connection(user_id: str, connection_id: str) -> None:
    if (user_id, connection_id) != ("alice", "c1"):
        raise NotFound("connection not found")


@pytest.fixture
def lambda_loop() -> Iterator[asyncio.AbstractEventLoop]:
    # Mangum runs each invocation on the thread's current loop, as the Lambda runtime does.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    loop.run_until_complete(close_hubs())
    loop.run_until_complete(close_clients())
    loop.close()
    asyncio.set_event_loop(None)


@pytest.fixture
def functions(lambda_loop: asyncio.AbstractEventLoop) -> Iterator[dict[str, ModuleType]]:
    settings: Settings = api_settings(SSE_POLL_WAIT_SECONDS=0.3)
    modules = {name: load_function(name) for name in ("enqueue", "status", "sse_gateway")}
    for module in modules.values():
        module.app.dependency_overrides[get_settings] = lambda: settings
        module.app.dependency_overrides[connection_lookup] = lambda: _known_connection
    yield modules
    for module in modules.values():
        module.app.dependency_overrides.clear()


def invoke(module: ModuleType, event: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = module.handler(event, CONTEXT)
    return response


def test_enqueue_handler_queues_a_job(functions: dict[str, ModuleType], clean_redis: redis.Redis) -> None:
    response = invoke(functions["enqueue"], load_event("enqueue_train_schema.json"))
    assert response["statusCode"] == 202, response
    job_id = json.loads(response["body"])["jobId"]
    assert response["headers"]["location"] == f"/api/jobs/{job_id}"
    stored = clean_redis.hgetall(f"ej:{{default}}:job:{job_id}")
    assert stored["user"] == "alice" and stored["status"] == "queued" and stored["priority"] == "3"
    # The same Idempotency-Key in a second invocation: the same job.
    again = invoke(functions["enqueue"], load_event("enqueue_train_schema.json"))
    assert json.loads(again["body"])["jobId"] == job_id

    status = invoke(functions["status"], load_event("status_get_job.json", JOB_ID=job_id))
    assert status["statusCode"] == 200
    assert json.loads(status["body"])["jobId"] == job_id


def test_malformed_json_through_lambda_is_400(functions: dict[str, ModuleType]) -> None:
    response = invoke(functions["enqueue"], load_event("enqueue_malformed_json.json"))
    assert response["statusCode"] == 400
    assert "detail" in json.loads(response["body"])


def test_healthz_handler(functions: dict[str, ModuleType]) -> None:
    response = invoke(functions["status"], load_event("status_healthz.json"))
    assert response["statusCode"] == 200, response


def test_sse_gateway_long_polls_under_mangum(functions: dict[str, ModuleType]) -> None:
    queued = invoke(functions["enqueue"], load_event("enqueue_train_schema.json"))
    job_id = json.loads(queued["body"])["jobId"]
    response = invoke(functions["sse_gateway"], load_event("sse_poll.json", LAST_EVENT_ID="0-0"))
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"].startswith("text/event-stream")
    assert "event: job_queued" in response["body"] and job_id in response["body"]
