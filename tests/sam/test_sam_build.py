"""The SAM build, as Lambda loads it: each function from `.aws-sam/build/<Function>` with only the
built layer on the path (no project venv), invoked with a sample event against the real Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.redis_urls import redis_test_url

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".aws-sam" / "build"
REDIS_URL = redis_test_url(11)  # this module's own database index, flushed around each test

# The first test builds with SAM: a fresh machine installs aws-sam-cli and the layer first.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def build() -> Path:
    """A fresh SAM build: .ci/sam-check.sh lints the template and runs an offline `sam build`
    (cached: quick when the layer's requirements did not change)."""
    subprocess.run(["bash", str(ROOT / ".ci" / "sam-check.sh")], check=True, timeout=900)
    return BUILD


@pytest.fixture
def r() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def invoke(build: Path, function: str, event: str, tmp_path: Path, user: str = "alice") -> dict[str, Any]:
    env = {
        "PATH": os.environ["PATH"],
        "REDIS_URL": REDIS_URL,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "EXPLORER_JOBS_HOME": str(tmp_path),
        "JWT_SECRET": "sam-test-secret-" + "x" * 40,
        "ENCRYPTION_KEY": "n7X8rkV3m2D0a5o3b6UeVbq1i8n6ZQ8tq6b3w5n9c2E=",
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "POWERTOOLS_METRICS_NAMESPACE": "ExplorerJobsTest",
    }
    out = subprocess.run(
        [
            sys.executable,
            "-S",
            "-I",
            str(Path(__file__).with_name("invoke_built.py")),
            str(build),
            function,
            str(ROOT / "tests" / "events" / event),
            user,
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["logs"] = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    return result


def test_the_built_enqueue_function_queues_a_job(build: Path, r: redis.Redis, tmp_path: Path) -> None:
    result = invoke(build, "EnqueueFunction", "enqueue_train_schema.json", tmp_path)
    answer = result["answer"]
    assert answer["statusCode"] == 202, answer
    job = json.loads(answer["body"])
    assert r.hget(f"ej:{{default}}:job:{job['jobId']}", "status") == "queued"
    assert (
        json.loads(r.hget(f"ej:{{default}}:job:{job['jobId']}", "data"))["connectionId"]
        == result["connection"]
    )
    assert result["modules"] == [], "the enqueue function loads no target-database driver"
    # On Lambda the function logs JSON through powertools, with the job id as correlation id.
    queued = [line for line in result["logs"] if line.get("message", "").startswith("queued schema_training")]
    assert queued and queued[0]["correlation_id"] == job["jobId"], result["logs"]


def test_the_built_status_function_answers_healthz(build: Path, r: redis.Redis, tmp_path: Path) -> None:
    answer = invoke(build, "StatusFunction", "status_healthz.json", tmp_path)["answer"]
    assert answer["statusCode"] == 200, answer


def test_the_built_scheduler_queues_due_trainings(build: Path, r: redis.Redis, tmp_path: Path) -> None:
    answer = invoke(build, "SchedulerFunction", "eventbridge_schedule.json", tmp_path)["answer"]
    assert answer == {"queued": 1, "alreadyQueued": 0}
    assert r.hget("ej:{default}:counts", "schema_training|queued") == "1"
