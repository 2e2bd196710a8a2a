"""Schemathesis against the combined app's OpenAPI document: no input makes a 5xx, and every answer
is one the document describes. Scale: `fuzzing.py` (FUZZ_FULL=1 for the full form)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from explorer_jobs.api.combined import create_combined_app

from .conftest import StartServer, api_settings
from .fuzzing import CHECKS, DERANDOMIZE, Tally, generate_from_schema_and_seed_only, scale, seeded
from .support import LiveServer, auth

EXAMPLES = scale("EXAMPLES")  # per operation and mode


@pytest.fixture
def fuzz_server(live_server: StartServer) -> LiveServer:
    # Poll mode, with a short wait: a fuzzed request to the stream must answer, not stream forever.
    # Every connection id is the fuzzer's, so train-schema gets past the lookup to the queue.
    settings = api_settings(SSE_MODE="poll", SSE_POLL_WAIT_SECONDS=0.05, ENQUEUE_RATE_LIMIT=100_000)
    return live_server(settings, None)


def test_openapi_covers_every_function() -> None:
    paths = create_combined_app().openapi()["paths"]
    assert set(paths) == {
        "/api/connections",
        "/api/connections/{id}",
        "/api/connections/{id}/test",
        "/api/connections/{id}/schemas",
        "/api/connections/{id}/schema-cache",
        "/api/connections/{id}/train-schema",
        "/api/jobs/{jobId}/cancel",
        "/api/jobs/{jobId}/retry",
        "/api/jobs/notifications/ticket",
        "/api/jobs/{jobId}",
        "/api/jobs",
        "/api/queues",
        "/healthz",
        "/api/jobs/notifications/stream",
    }


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors(
    fuzz_server: LiveServer,
    mode: GenerationMode,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    generate_from_schema_and_seed_only(monkeypatch)
    schema = schemathesis.openapi.from_dict(create_combined_app().openapi())
    session = requests.Session()
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    strategy = st.one_of([op.as_strategy(generation_mode=mode) for op in operations])
    tally = Tally()
    headers = auth("fuzzer", ttl=3600)
    began = time.monotonic()

    @settings(
        max_examples=EXAMPLES * len(operations),
        deadline=None,
        database=None,
        derandomize=DERANDOMIZE,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: schemathesis.Case[Any]) -> None:
        # A valid token on every request, so generation reaches past authentication.
        response = case.call(base_url=fuzz_server.url, session=session, headers=headers, timeout=10)
        tally.check(case, response, CHECKS)

    seeded(run)()
    session.close()
    # Hypothesis may stop short of max_examples; most of the budget must have run.
    name = f"stateless {mode.value} ({time.monotonic() - began:.1f} s)"
    tally.assert_clean(name, capsys, at_least=EXAMPLES * len(operations) * 9 // 10)
