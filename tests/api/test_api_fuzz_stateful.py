"""Schemathesis's state machine over the OpenAPI links: create a connection and follow it to its
reads, test, trainings and deletion; follow a queued job to its read, cancel and retry; a ticket
to the event stream. Against a live server with the real connections store; no 5xx, and every
answer one the document describes. Scale: `fuzzing.py` (FUZZ_FULL=1 for the full form).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis import Case, Response

from explorer_jobs.api.combined import create_combined_app
from explorer_jobs.connections.models import validate_cron
from explorer_jobs.settings import get_settings

from .conftest import api_settings
from .fuzzing import DERANDOMIZE, STATEFUL_CHECKS, Tally, generate_from_schema_and_seed_only, scale, seeded
from .support import LiveServer, auth

STREAM = "/api/jobs/notifications/stream"
CREATE_CONNECTION = "POST /api/connections"
# Stand-ins for the fields a dialect requires; `.invalid` never resolves, so a test or a schema
# listing of the connection is a quick 502, never a connection to anything.
REQUIRED_FOR_DIALECT = {"name": "fuzz", "host": "db.invalid", "username": "fuzzer", "database": "fuzz"}


@pytest.fixture
def stateful_server() -> Iterator[LiveServer]:
    # The real connection lookup (not the suite's stand-in): a training needs a saved connection, and
    # a deleted one must be gone for every route. Poll mode with a short wait: the stream answers.
    app = create_combined_app()
    overridden = api_settings(SSE_MODE="poll", SSE_POLL_WAIT_SECONDS=0.05, ENQUEUE_RATE_LIMIT=100_000)
    app.dependency_overrides[get_settings] = lambda: overridden
    server = LiveServer.start(app)
    yield server
    server.stop()


def _valid_connection_bodies(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    """Half the time, fill what a postgresql or mysql connection needs that the schema cannot say
    (`host`, `username`, `database` not blank, a five-field cron), so the state machine gets
    connections to follow; the other half, the body as generated. Only blank or missing fields and a
    bad cron change: a body that breaks the schema still does."""
    if context.operation is None or context.operation.label != CREATE_CONNECTION:
        return st.just(body)
    if not isinstance(body, dict) or body.get("dialect") not in ("postgresql", "mysql"):
        return st.just(body)
    filled = dict(body)
    for name, stand_in in REQUIRED_FOR_DIALECT.items():
        value = filled.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            filled[name] = stand_in
    schedule = filled.get("trainingSchedule")
    if isinstance(schedule, str) and schedule.strip():
        try:
            validate_cron(schedule)
        except ValueError:
            filled["trainingSchedule"] = "0 2 * * 0"
    return st.sampled_from([filled, body])


def test_links_name_real_operations_and_parameters() -> None:
    """Every documented link points at an operation of the document and names its parameters."""
    document = create_combined_app().openapi()
    operations = {
        f"#/paths/{path.replace('~', '~0').replace('/', '~1')}/{method}": operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }
    found = 0
    for methods in document["paths"].values():
        for operation in methods.values():
            for response in operation["responses"].values():
                for link in response.get("links", {}).values():
                    target = operations[link["operationRef"]]
                    names = {p["name"] for p in target.get("parameters", [])}
                    assert set(link["parameters"]) <= names, link
                    found += 1
    assert found == 7 * 2 + 3 * 4 + 1  # connection x2, job x4 (train, read, cancel, retry), ticket


@pytest.mark.timeout(900)
def test_state_machine(
    stateful_server: LiveServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    generate_from_schema_and_seed_only(monkeypatch)
    schema = schemathesis.openapi.from_dict(create_combined_app().openapi())
    schema.hooks.register_hook_with_name(_valid_connection_bodies, "flatmap_body")
    session = requests.Session()
    tally = Tally()
    users = itertools.count()
    base_url = stateful_server.url

    class Scenario(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # A new user per scenario: each starts from nothing, so Hypothesis sees the same answers
            # to the same calls (its strategies must not depend on state left by earlier scenarios).
            self.headers = auth(f"fuzzer-{next(users)}", ttl=3600)

        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            headers = self.headers
            if case.operation.path == STREAM and case.query and "ticket" in case.query:
                headers = {}  # as EventSource does: the ticket alone
            return {"base_url": base_url, "session": session, "headers": headers, "timeout": 10}

        def validate_response(self, response: Response, case: Case, *args: Any, **kwargs: Any) -> None:
            tally.check(case, response, STATEFUL_CHECKS, transport_kwargs=kwargs, recorder=self.recorder)

    began = time.monotonic()
    seeded(Scenario).run(
        settings=settings(
            max_examples=scale("SCENARIOS"),
            stateful_step_count=scale("STEPS"),
            deadline=None,
            database=None,
            derandomize=DERANDOMIZE,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
    )
    session.close()
    name = f"stateful ({time.monotonic() - began:.1f} s)"
    # Each scenario makes at least two calls.
    tally.assert_clean(name, capsys, at_least=2 * scale("SCENARIOS"))
    # The links were followed: connections made, read, trained and deleted; jobs read and cancelled;
    # a ticket spent on the stream.
    for reached in (
        "POST /api/connections 201",
        "POST /api/connections/{id}/train-schema 202",
        "GET /api/connections/{id} 200",
        "DELETE /api/connections/{id} 204",
        "GET /api/jobs/{jobId} 200",
        "POST /api/jobs/{jobId}/cancel 202",
        "POST /api/jobs/notifications/ticket 200",
        f"GET {STREAM} 200",
    ):
        assert tally.calls[reached] > 0, f"no {reached}: {dict(tally.calls)}"
