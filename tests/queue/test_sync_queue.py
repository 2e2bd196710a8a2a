"""The blocking producer: what it queues is what the asyncio `Queue` and the worker see, with the
same idempotency, rate limit and validation, on one Redis and on the cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from explorer_jobs.enqueueing import EnqueueRequest, Precondition, RateLimit
from explorer_jobs.errors import IdempotencyConflict, InvalidInput, NotFound, PreconditionFailed, RateLimited
from explorer_jobs.models import JobStatus
from explorer_jobs.queue import Queue
from explorer_jobs.redis_client import RedisClient
from explorer_jobs.settings import Settings
from explorer_jobs.sync_queue import SyncQueue
from tests.support.events import read_events

USER = "sync-user"


@pytest.fixture
def sync_queue(backend: tuple[RedisClient, Settings]) -> Iterator[SyncQueue]:
    _, settings = backend
    queue = SyncQueue.connect(settings)
    yield queue
    queue.close()


async def test_a_job_queued_in_blocking_code_is_the_same_job_everywhere(
    sync_queue: SyncQueue, queue: Queue
) -> None:
    queued = sync_queue.enqueue("test_echo", {"value": 7}, user_id=USER, priority=3)
    assert queued.created and queued.job.status is JobStatus.QUEUED
    assert await queue.get(queued.job.job_id, user_id=USER) == queued.job == sync_queue.get(queued.job.job_id)
    [event] = await read_events(queue, USER)
    assert (event["type"], event["jobId"]) == ("job_queued", queued.job.job_id)
    claim = await queue.claim("w1", 5)
    assert [c.job_id for c in claim.jobs] == [queued.job.job_id]


async def test_bulk_keeps_order_across_script_calls(sync_queue: SyncQueue, queue: Queue) -> None:
    requests = [EnqueueRequest("test_echo", {"value": i}, USER) for i in range(2_500)]
    results = sync_queue.enqueue_many(requests)
    assert [r.job.data["value"] for r in results] == list(range(2_500))
    claim = await queue.claim("w1", 2_500)
    assert [c.job_id for c in claim.jobs] == [r.job.job_id for r in results]


async def test_idempotency_key_answers_the_first_job(sync_queue: SyncQueue, queue: Queue) -> None:
    first = sync_queue.enqueue("test_echo", {"value": 1}, user_id=USER, idempotency_key="k1")
    again = sync_queue.enqueue("test_echo", {"value": 1}, user_id=USER, idempotency_key="k1")
    assert again.job == first.job and not again.created
    with pytest.raises(IdempotencyConflict):
        sync_queue.enqueue("test_echo", {"value": 2}, user_id=USER, idempotency_key="k1")
    # The asyncio queue shares the keys: the same request there is the same job.
    there = await queue.enqueue("test_echo", {"value": 1}, user_id=USER, idempotency_key="k1")
    assert there.job.job_id == first.job.job_id and not there.created


async def test_refusals_change_nothing(sync_queue: SyncQueue, queue: Queue) -> None:
    with pytest.raises(InvalidInput):
        sync_queue.enqueue("test_echo", {"steps": "not a number"}, user_id=USER)
    with pytest.raises(InvalidInput):
        sync_queue.enqueue("test_echo", {"value": 1}, user_id=USER, priority=11)
    limit = RateLimit(USER, limit=1, window_seconds=60)
    sync_queue.enqueue("test_echo", {"value": 1}, user_id=USER, rate_limit=limit)
    with pytest.raises(RateLimited):
        sync_queue.enqueue("test_echo", {"value": 2}, user_id=USER, rate_limit=limit)
    [counts] = await queue.counts(USER)
    assert counts.counts["queued"] == 1
    with pytest.raises(NotFound):
        sync_queue.get("no-such-job")


async def test_a_precondition_that_does_not_hold_queues_and_counts_nothing(
    sync_queue: SyncQueue, queue: Queue
) -> None:
    must_own = Precondition("conn:c9", USER)
    limit = RateLimit(USER, limit=1, window_seconds=60)
    with pytest.raises(PreconditionFailed):
        await queue.enqueue("test_echo", {"value": 1}, user_id=USER, rate_limit=limit, precondition=must_own)
    await queue.redis.set(queue.keys.connection_owner("c9"), "someone-else")
    with pytest.raises(PreconditionFailed):
        sync_queue.enqueue("test_echo", {"value": 1}, user_id=USER, rate_limit=limit, precondition=must_own)
    assert await queue.counts(USER) == []
    await queue.redis.set(queue.keys.connection_owner("c9"), USER)
    held = await queue.enqueue(
        "test_echo", {"value": 1}, user_id=USER, rate_limit=limit, precondition=must_own
    )
    assert held.created  # the allowance of one was still whole: the refusals counted nothing
