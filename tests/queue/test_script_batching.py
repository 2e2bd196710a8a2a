"""Concurrent enqueues share a pipeline (`script_batching.py`), and each still behaves alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from explorer_jobs.errors import IdempotencyConflict
from explorer_jobs.queue import Queue
from explorer_jobs.redis_client import RedisClient, create_redis
from explorer_jobs.script_batching import ScriptBatcher
from tests.conftest import TEST_REDIS_URL, queue_settings

USER = "alice"


@pytest.fixture
async def queue(redis: RedisClient) -> AsyncIterator[Queue]:
    yield Queue(redis, queue_settings(TEST_REDIS_URL))


@pytest.fixture
def batch_sizes(queue: Queue, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every batch the queue's enqueue batcher sends."""
    batcher = queue._enqueue_batcher
    assert isinstance(batcher, ScriptBatcher)
    sizes: list[int] = []
    send = batcher._pipeline

    async def counted(batch: list[Any]) -> list[Any]:
        sizes.append(len(batch))
        return await send(batch)

    monkeypatch.setattr(batcher, "_pipeline", counted)
    return sizes


async def enqueue(queue: Queue, value: object, **options: Any) -> Any:
    return (await queue.enqueue("test_echo", {"value": value}, user_id=USER, **options)).job


async def stored_jobs(queue: Queue) -> int:
    return int(await queue.redis.zcard(queue.keys.user_jobs(USER)))  # type: ignore[misc]


async def test_concurrent_enqueues_share_round_trips_and_each_gets_its_own_job(
    queue: Queue, batch_sizes: list[int]
) -> None:
    jobs = await asyncio.gather(*(enqueue(queue, i) for i in range(50)))
    assert len({job.job_id for job in jobs}) == 50
    for i, job in enumerate(jobs):  # each caller got the reply to its own call
        assert job.data["value"] == i
        assert (await queue.get(job.job_id)).data["value"] == i
    assert sum(batch_sizes) == 50 and len(batch_sizes) < 50
    assert await stored_jobs(queue) == 50


async def test_a_lone_call_is_sent_alone_at_once(queue: Queue, batch_sizes: list[int]) -> None:
    for i in range(3):
        await enqueue(queue, i)
    assert batch_sizes == [1, 1, 1]


async def test_an_error_reaches_only_the_call_it_belongs_to(queue: Queue) -> None:
    first = await enqueue(queue, "a", idempotency_key="k")
    outcomes = await asyncio.gather(
        enqueue(queue, "b", idempotency_key="k"),  # the same key with another request: 409
        enqueue(queue, "a", idempotency_key="k"),  # the same request again: the first job
        *(enqueue(queue, i) for i in range(5)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], IdempotencyConflict)
    assert outcomes[1].job_id == first.job_id
    assert [job.data["value"] for job in outcomes[2:]] == list(range(5))
    assert await stored_jobs(queue) == 6


async def test_a_flushed_script_is_loaded_again(queue: Queue) -> None:
    await enqueue(queue, 0)
    await queue.redis.script_flush()
    jobs = await asyncio.gather(*(enqueue(queue, i) for i in range(10)))
    assert [job.data["value"] for job in jobs] == list(range(10))
    assert await stored_jobs(queue) == 11


async def test_a_dropped_connection_is_reconnected_and_no_call_runs_twice(queue: Queue) -> None:
    await enqueue(queue, 0)  # the batcher now holds an open pooled connection
    control = create_redis(TEST_REDIS_URL, cluster=False)
    try:
        killed = await control.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        assert int(killed) >= 1
    finally:
        await control.aclose()
    jobs = await asyncio.gather(*(enqueue(queue, i) for i in range(10)))
    assert len({job.job_id for job in jobs}) == 10
    assert await stored_jobs(queue) == 11
    [counts] = await queue.counts()
    assert counts.counts["queued"] == 11  # counted once each, as the events and the sets were


async def test_a_caller_that_gave_up_before_its_batch_left_is_not_sent(
    queue: Queue, batch_sizes: list[int]
) -> None:
    kept = asyncio.ensure_future(enqueue(queue, "kept"))
    dropped = asyncio.ensure_future(enqueue(queue, "dropped"))
    # Both calls are now waiting for the batch sender, which has not run yet.
    await asyncio.sleep(0)
    dropped.cancel()
    job = await asyncio.wait_for(kept, 10)
    with pytest.raises(asyncio.CancelledError):
        await dropped
    assert batch_sizes == [1] and job.data["value"] == "kept"
    assert await stored_jobs(queue) == 1
