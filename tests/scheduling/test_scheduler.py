"""Scheduled re-training: which connections are due, and that a tick delivered twice, or two
schedulers, never queue the same training twice."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from explorer_jobs.connections.models import ConnectionCreate
from explorer_jobs.connections.service import create_connection
from explorer_jobs.queue import Queue
from explorer_jobs.redis_client import RedisClient
from explorer_jobs.scheduling import Scheduled, due, fire, last_fire_time
from explorer_jobs.settings import Settings
from tests.conftest import TEST_REDIS_URL, queue_settings

ROOT = Path(__file__).resolve().parents[2]
SUNDAY_2AM = datetime(2026, 11, 29, 2, 0, 30, tzinfo=UTC)  # a Sunday


def test_last_fire_time_includes_now() -> None:
    assert last_fire_time("0 2 * * 0", datetime(2026, 11, 29, 2, 0, tzinfo=UTC)) == datetime(
        2026, 11, 29, 2, 0, tzinfo=UTC
    )
    assert last_fire_time("0 2 * * 0", SUNDAY_2AM - timedelta(minutes=5)) == datetime(
        2026, 11, 22, 2, 0, tzinfo=UTC
    )


def test_due_within_the_window_only() -> None:
    weekly = Scheduled("c1", "u", "0 2 * * 0")
    every5 = Scheduled("c2", "u", "*/5 * * * *")
    daily3 = Scheduled("c3", "u", "0 3 * * *")
    window = timedelta(minutes=2)
    got = due([weekly, every5, daily3], SUNDAY_2AM, window)
    assert [(s.connection_id, t) for s, t in got] == [
        ("c1", SUNDAY_2AM.replace(second=0)),
        ("c2", SUNDAY_2AM.replace(second=0)),
    ]
    assert due([weekly], SUNDAY_2AM + timedelta(minutes=3), window) == []


def sqlite_connection(user: str, tmp_path: Path, schedule: str | None) -> str:
    db = tmp_path / f"{user}.db"
    db.touch()
    body = ConnectionCreate(name=f"{user} db", dialect="sqlite", database=str(db), training_schedule=schedule)
    return create_connection(user, body).id


@pytest.fixture
def queue(redis: RedisClient) -> Queue:
    return Queue(redis, queue_settings(TEST_REDIS_URL))


async def test_a_tick_queues_due_trainings_once(
    isolated_store: Settings, queue: Queue, tmp_path: Path
) -> None:
    weekly = sqlite_connection("alice", tmp_path, "0 2 * * 0")
    sqlite_connection("bob", tmp_path, "0 3 * * *")  # not due at 02:00
    sqlite_connection("carol", tmp_path, None)  # no scheduled re-training
    first = await fire(queue, SUNDAY_2AM)
    assert [(r.job.data["connectionId"], r.job.user_id, r.created) for r in first] == [
        (weekly, "alice", True)
    ]
    # The same tick delivered again, and two schedulers at once: nothing new.
    again = await asyncio.gather(fire(queue, SUNDAY_2AM), fire(queue, SUNDAY_2AM + timedelta(seconds=20)))
    assert {r.job.job_id for results in again for r in results} == {first[0].job.job_id}
    assert not any(r.created for results in again for r in results)
    [counts] = await queue.counts("alice")
    assert counts.counts["queued"] == 1
    # Next week is a new fire time: a new training.
    later = await fire(queue, SUNDAY_2AM + timedelta(days=7))
    assert later[0].created and later[0].job.job_id != first[0].job.job_id


@dataclass
class LambdaContext:
    function_name: str = "SchedulerFunction"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:SchedulerFunction"
    aws_request_id: str = "req-1"


def load_scheduler_function():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("scheduler_app", ROOT / "functions/scheduler/app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_scheduler_function_handles_an_eventbridge_event(
    isolated_store: Settings, redis: RedisClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = queue_settings(TEST_REDIS_URL)
    monkeypatch.setenv("REDIS_URL", TEST_REDIS_URL)
    monkeypatch.setenv("QUEUE_NAME", settings.QUEUE_NAME)
    from explorer_jobs.settings import get_settings

    get_settings.cache_clear()
    sqlite_connection("alice", tmp_path, "0 2 * * 0")
    event = json.loads((ROOT / "tests/events/eventbridge_schedule.json").read_text())
    app = load_scheduler_function()
    # The handler runs its own event loop, as on Lambda: call it from a thread.
    first = await asyncio.to_thread(app.handler, event, LambdaContext())
    second = await asyncio.to_thread(app.handler, event, LambdaContext())
    assert first == {"queued": 1, "alreadyQueued": 0}
    assert second == {"queued": 0, "alreadyQueued": 1}
    [counts] = await Queue(redis, get_settings()).counts("alice")
    assert counts.job_type == "schema_training" and counts.counts["queued"] == 1


def test_a_new_connection_is_retrained_weekly_unless_it_says_otherwise(
    isolated_store: Settings, tmp_path: Path
) -> None:
    db = tmp_path / "x.db"
    db.touch()
    default = create_connection("alice", ConnectionCreate(name="a", dialect="sqlite", database=str(db)))
    assert default.training_schedule == isolated_store.SCHEMA_TRAINING_CRON == "0 2 * * 0"
    none = create_connection(
        "alice",
        ConnectionCreate.model_validate(
            {"name": "b", "dialect": "sqlite", "database": str(db), "trainingSchedule": None}
        ),
    )
    assert none.training_schedule is None
