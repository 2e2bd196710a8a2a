"""What the fuzz tests found, each pinned: answers the app gave that its OpenAPI document did not
describe (the answers were right by API.md; the document was not). And the 503s the document now
states, seen for real with Redis down, since no fuzz run reaches them."""

from __future__ import annotations

import collections

import httpx
import pytest
import requests
import schemathesis

from explorer_jobs.api.combined import create_combined_app
from explorer_jobs.queue import Queue
from explorer_jobs.settings import Settings

from .conftest import StartServer, api_settings
from .fuzzing import CHECKS
from .support import auth, free_port

STREAM = "/api/jobs/notifications/stream"
PATH_PARAMETERS = {"id": "c1", "jobId": "j1"}


@pytest.fixture
def schema() -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_dict(create_combined_app().openapi())


def assert_documented(schema: schemathesis.BaseSchema, method: str, path: str, response: object) -> None:
    """The answer passes the status, content type, body schema and header checks of its operation."""
    operation = schema[path][method]
    names = {p.name for p in operation.iter_parameters() if p.location == "path"}
    case = operation.Case(path_parameters={k: v for k, v in PATH_PARAMETERS.items() if k in names})
    case.validate_response(response, checks=CHECKS)


def test_every_api_operation_documents_its_401(
    live_server: StartServer, settings: Settings, schema: schemathesis.BaseSchema
) -> None:
    # Found: ST103, 401 answered on every /api route but documented on none.
    server = live_server(settings)
    checked = 0
    for path, methods in schema.raw_schema["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method in methods:
            url = server.url + path.format(**PATH_PARAMETERS)
            response = requests.request(method.upper(), url, timeout=10)
            assert response.status_code == 401, (method, path, response.status_code)
            assert_documented(schema, method.upper(), path, response)
            checked += 1
    assert checked == 16


@pytest.mark.parametrize("query", [{"cursor": "not-a-cursor"}, {"jobType": "no_such_type"}])
def test_a_422_with_a_message_matches_the_document(
    live_server: StartServer, settings: Settings, schema: schemathesis.BaseSchema, query: dict[str, str]
) -> None:
    # Found: ST108, the document gave every 422 FastAPI's list-only body; ours may be a message.
    server = live_server(settings)
    response = requests.get(f"{server.url}/api/jobs", params=query, headers=auth(), timeout=10)
    assert response.status_code == 422 and isinstance(response.json()["detail"], str)
    assert_documented(schema, "GET", "/api/jobs", response)


def test_malformed_json_is_a_documented_400(
    live_server: StartServer, settings: Settings, schema: schemathesis.BaseSchema
) -> None:
    # Found: ST103, 400 (API.md: malformed JSON) was not among the documented answers.
    server = live_server(settings)
    headers = {**auth(), "Content-Type": "application/json"}
    response = requests.post(f"{server.url}/api/connections", data=b'{"name": ', headers=headers, timeout=10)
    assert response.status_code == 400
    assert_documented(schema, "POST", "/api/connections", response)


async def test_stream_events_match_the_documented_event(
    live_server: StartServer, settings: Settings, queue: Queue, schema: schemathesis.BaseSchema
) -> None:
    # Found: "SSE event violates schema"; Open API 3.1 reads an event stream's schema as that of
    # one event ({event, id, data, retry}), and the document said a bare string.
    server = live_server(settings)
    job = (await queue.enqueue("schema_training", {"connectionId": "c1"}, user_id="alice")).job
    await queue.cancel(job.job_id)
    async with httpx.AsyncClient(base_url=server.url) as http:
        params = {"mode": "poll", "lastEventId": "0"}  # replays both events at once
        answer = await http.get(STREAM, params=params, headers=auth(), timeout=10)
    assert answer.status_code == 200
    assert answer.text.count("event: job_queued") == 1 and answer.text.count("event: job_cancelled") == 1
    assert_documented(schema, "GET", STREAM, answer)


def test_answers_with_redis_down_match_the_document(
    live_server: StartServer, schema: schemathesis.BaseSchema
) -> None:
    # Every answer documented, 503s and their Retry-After included: nothing listens on this port.
    server = live_server(api_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"))
    statuses: collections.Counter[int] = collections.Counter()
    for path, methods in schema.raw_schema["paths"].items():
        for method in methods:
            url = server.url + path.format(**PATH_PARAMETERS)
            response = requests.request(method.upper(), url, headers=auth(), json={}, timeout=30)
            statuses[response.status_code] += 1
            assert_documented(schema, method.upper(), path, response)
    assert statuses[503] >= 5, statuses  # every route that needs Redis (the store-only ones answer)


def test_a_password_the_driver_cannot_send_is_a_502(live_server: StartServer, settings: Settings) -> None:
    # Found: 500 on GET /schemas; PyMySQL sends a password as latin-1, and raised UnicodeEncodeError
    # before connecting. The database cannot be reached with these credentials: 502, and a message
    # that quotes none of the password. (A lone surrogate, which no driver could send, is 422 at save.)
    server = live_server(settings)
    body = {"name": "n", "dialect": "mysql", "host": "127.0.0.1", "port": free_port(), "username": "u"}
    body |= {"password": "s3cr\u2713t"}
    created = requests.post(f"{server.url}/api/connections", json=body, headers=auth(), timeout=10)
    assert created.status_code == 201, created.text
    connection = f"{server.url}/api/connections/{created.json()['id']}"
    for method, suffix in (("POST", "/test"), ("GET", "/schemas")):
        response = requests.request(method, connection + suffix, headers=auth(), timeout=30)
        assert response.status_code == 502, (suffix, response.status_code, response.text)
        detail = response.json()["detail"]
        assert "cannot send" in detail and "s3cr" not in detail and "\u2713" not in detail
