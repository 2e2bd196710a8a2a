"""The worker in-process: running, retrying, timing out, cancelling, stopping, and losing Redis."""

from __future__ import annotations

import asyncio
import logging

import pytest

from explorer_jobs.models import JobStatus
from explorer_jobs.processors import PROCESSORS
from explorer_jobs.queue import EnqueueRequest, Queue, Settlement
from explorer_jobs.redis_client import RedisClient, create_redis
from explorer_jobs.settings import Settings
from explorer_jobs.worker import Worker, backoff_delay
from tests.conftest import queue_settings
from tests.support.events import has_event, read_events, types_of, wait_for_events
from tests.support.workers import running

USER = "alice"


def make_worker(queue: Queue, **options: object) -> Worker:
    return Worker(queue, processors=PROCESSORS, **options)  # type: ignore[arg-type]


def test_backoff_is_exponential_capped_and_jittered() -> None:
    low = [backoff_delay(a, 1.0, 10.0, rng=lambda: 0.0) for a in range(1, 7)]
    high = [backoff_delay(a, 1.0, 10.0, rng=lambda: 1.0) for a in range(1, 7)]
    assert low == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert high == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


async def test_runs_jobs_and_reports_progress(queue: Queue) -> None:
    job = (await queue.enqueue("test_echo", {"value": "hi", "steps": 3}, user_id=USER)).job
    async with running(make_worker(queue)):
        await wait_for_events(queue, USER, has_event(job.job_id, "job_completed"))
    done = await queue.get(job.job_id)
    assert done.status is JobStatus.COMPLETED and done.result == {"echo": "hi", "attempt": 1}
    assert types_of(await read_events(queue, USER), job.job_id) == [
        "job_queued",
        "job_started",
        "job_progress",
        "job_progress",
        "job_progress",
        "job_completed",
    ]


async def test_sync_processors_run_in_threads(queue: Queue) -> None:
    job = (await queue.enqueue("test_sync", {"value": 21}, user_id=USER)).job
    async with running(make_worker(queue)):
        events = await wait_for_events(queue, USER, has_event(job.job_id, "job_completed"))
    assert "job_progress" in types_of(events, job.job_id)
    assert (await queue.get(job.job_id)).result == {"double": 42}


async def test_retries_with_backoff_then_succeeds(queue: Queue) -> None:
    job = (await queue.enqueue("test_echo", {"value": 1, "fail_times": 2}, user_id=USER)).job
    async with running(make_worker(queue)):
        await wait_for_events(queue, USER, has_event(job.job_id, "job_completed"))
    done = await queue.get(job.job_id)
    assert done.attempts == 3 and done.result == {"echo": 1, "attempt": 3}
    assert types_of(await read_events(queue, USER), job.job_id).count("job_retrying") == 2


async def test_permanent_error_fails_at_once(queue: Queue) -> None:
    job = (await queue.enqueue("test_echo", {"permanent": True}, user_id=USER)).job
    async with running(make_worker(queue)):
        events = await wait_for_events(queue, USER, has_event(job.job_id, "job_failed"))
    assert "job_retrying" not in types_of(events, job.job_id)
    failed = await queue.get(job.job_id)
    assert failed.attempts == 1 and "cannot succeed" in (failed.error or "")


async def test_a_job_past_its_timeout_fails_and_frees_the_slot(queue: Queue) -> None:
    slow = (
        await queue.enqueue(
            "test_echo", {"steps": 100, "step_seconds": 0.05}, user_id=USER, timeout=0.2, max_attempts=1
        )
    ).job
    after = (await queue.enqueue("test_echo", {"value": 2}, user_id=USER)).job
    async with running(make_worker(queue, concurrency=1)):
        await wait_for_events(queue, USER, has_event(after.job_id, "job_completed"))
    failed = await queue.get(slow.job_id)
    assert failed.status is JobStatus.FAILED and failed.error == "timed out after 0.2 s"


async def test_cancel_an_active_job_stops_it_at_its_next_checkpoint(queue: Queue) -> None:
    job = (await queue.enqueue("test_echo", {"steps": 500, "step_seconds": 0.01}, user_id=USER)).job
    async with running(make_worker(queue)):
        await wait_for_events(queue, USER, has_event(job.job_id, "job_progress"))
        await queue.cancel(job.job_id, user_id=USER)
        await wait_for_events(queue, USER, has_event(job.job_id, "job_cancelled"), timeout=5)
    cancelled = await queue.get(job.job_id)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.progress < 100


async def test_an_unknown_job_type_fails_with_a_clear_error(queue: Queue) -> None:
    job = (await queue.enqueue("test_echo", {"value": 1}, user_id=USER)).job
    async with running(Worker(queue, processors={})):
        await wait_for_events(queue, USER, has_event(job.job_id, "job_failed"))
    assert "no processor for job type 'test_echo'" in ((await queue.get(job.job_id)).error or "")


async def test_stop_waits_for_running_jobs_within_the_grace(
    queue: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    job = (await queue.enqueue("test_echo", {"steps": 5, "step_seconds": 0.05}, user_id=USER)).job
    worker = make_worker(queue, grace_seconds=10)
    caplog.set_level(logging.INFO, "explorer_jobs.worker")
    async with running(worker):
        await wait_for_events(queue, USER, has_event(job.job_id, "job_started"))
    assert (await queue.get(job.job_id)).status is JobStatus.COMPLETED
    assert "waiting up to 10 s for 1 running jobs" in caplog.text


async def test_stop_releases_what_outlives_the_grace_to_another_worker(
    queue: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    job = (await queue.enqueue("test_echo", {"steps": 1000, "step_seconds": 0.01}, user_id=USER)).job
    caplog.set_level(logging.INFO, "explorer_jobs.worker")
    async with running(make_worker(queue, grace_seconds=0.1)):
        await wait_for_events(queue, USER, has_event(job.job_id, "job_progress"))
    released = await queue.get(job.job_id)
    assert released.status is JobStatus.QUEUED and released.message == "released by a stopping worker"
    assert "released 1 unfinished jobs" in caplog.text
    # Another worker takes it at once, not after the lease runs out.
    [again] = (await queue.claim("other", 1)).jobs
    assert again.job_id == job.job_id and again.attempt == 2


async def test_lease_renewal_keeps_a_long_job_owned(redis: RedisClient) -> None:
    from tests.conftest import TEST_REDIS_URL

    queue = Queue(redis, queue_settings(TEST_REDIS_URL, LEASE_SECONDS=0.3))
    job = (await queue.enqueue("test_echo", {"steps": 10, "step_seconds": 0.1}, user_id=USER)).job
    async with running(make_worker(queue)):
        events = await wait_for_events(queue, USER, has_event(job.job_id, "job_completed"))
    assert "job_retrying" not in types_of(events, job.job_id), "a renewed lease never stalls"
    assert (await queue.get(job.job_id)).attempts == 1


async def test_worker_survives_redis_restarting(throwaway_redis) -> None:  # type: ignore[no-untyped-def]
    server = throwaway_redis(appendonly=True, appendfsync="always")
    settings: Settings = queue_settings(server.url)
    client = create_redis(server.url, settings=settings)
    queue = Queue(client, settings)
    first = (await queue.enqueue("test_echo", {"value": 1}, user_id=USER)).job
    async with running(make_worker(queue)):
        await wait_for_events(queue, USER, has_event(first.job_id, "job_completed"))
        server.kill()
        await asyncio.sleep(0.3)  # the worker must notice Redis is gone while it is gone
        server.start()
        second = (await queue.enqueue("test_echo", {"value": 2}, user_id=USER)).job
        await wait_for_events(queue, USER, has_event(second.job_id, "job_completed"))
    assert (await queue.get(first.job_id)).status is JobStatus.COMPLETED
    await client.aclose()


async def test_the_worker_archives_expired_jobs_before_dropping_them(redis: RedisClient) -> None:
    from tests.conftest import TEST_REDIS_URL

    queue = Queue(redis, queue_settings(TEST_REDIS_URL, JOB_RETENTION_SECONDS=1))
    job = (await queue.enqueue("test_echo", {"value": 1}, user_id=USER)).job
    archived: list[str] = []

    def archive(jobs: list) -> None:  # type: ignore[type-arg]
        archived.extend(j.job_id for j in jobs)

    worker = Worker(queue, processors=PROCESSORS, archive=archive)
    async with running(worker):
        await wait_for_events(queue, USER, has_event(job.job_id, "job_completed"))
        await asyncio.sleep(1.05)  # past the retention
        # Maintenance runs on its own period; run one round now rather than wait for it.
        _, _, expired = await queue.maintain()
        assert await worker._archive(expired) == 1
    assert archived == [job.job_id]
    assert (await queue.list_jobs(USER)).jobs == []


async def test_a_failing_archive_keeps_the_jobs_in_redis(redis: RedisClient) -> None:
    from tests.conftest import TEST_REDIS_URL

    queue = Queue(redis, queue_settings(TEST_REDIS_URL, JOB_RETENTION_SECONDS=1))
    job = (await queue.enqueue("test_echo", {"value": 1}, user_id=USER)).job
    await queue.cancel(job.job_id, user_id=USER)

    def archive(jobs: list) -> None:  # type: ignore[type-arg]
        raise ConnectionError("the store is down")

    worker = Worker(queue, processors=PROCESSORS, archive=archive)
    await asyncio.sleep(1.05)  # past the retention
    _, _, expired = await queue.maintain()
    assert await worker._archive(expired) == 0
    assert (await queue.get(job.job_id)).status is JobStatus.CANCELLED


async def test_a_worker_runs_one_suspect_at_a_time_beside_fresh_jobs(
    queue: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    slow = {"steps": 1, "step_seconds": 0.1}
    reqs = [EnqueueRequest("test_echo", slow | {"value": i}, USER) for i in range(4)]
    s0, s1, f0, f1 = [r.job.job_id for r in await queue.enqueue_many(reqs)]
    # The first two were claimed by a worker that died: their leases ran out, they are suspects.
    await queue.claim("doomed", 2, lease_ms=1)
    await asyncio.sleep(0.01)  # the leases must run out (time is the subject)
    assert (await queue.maintain())[1] == 2
    caplog.set_level(logging.INFO, "explorer_jobs.worker")
    async with running(make_worker(queue, concurrency=3)):
        events = await wait_for_events(
            queue, USER, lambda ev: sum(e["type"] == "job_completed" for e in ev) == 4
        )
    at = {(e["type"], e["jobId"]): i for i, e in enumerate(events)}  # the last of each
    assert at["job_started", s1] > at["job_completed", s0], "never two suspects at once"
    assert max(at["job_started", f0], at["job_started", f1]) < at["job_completed", s0], (
        "fresh jobs run beside a suspect"
    )
    assert caplog.text.count("is a suspect (leases run out: 1)") == 2


async def test_a_worker_done_with_its_suspect_wakes_for_the_next_one(queue: Queue) -> None:
    slow = {"steps": 1, "step_seconds": 0.3}
    reqs = [EnqueueRequest("test_echo", slow | {"value": i}, USER) for i in range(2)]
    theirs, ours = [r.job.job_id for r in await queue.enqueue_many(reqs)]
    await queue.claim("doomed", 2, lease_ms=1)
    await asyncio.sleep(0.01)  # the leases must run out (time is the subject)
    assert (await queue.maintain())[1] == 2
    [other] = (await queue.claim("other", 1, lease_ms=60_000)).jobs
    assert other.job_id == theirs and other.suspect
    async with running(make_worker(queue, concurrency=2)):
        # Holding a suspect, it long-polls only for fresh work; done with it, for suspects too.
        await wait_for_events(queue, USER, has_event(ours, "job_completed"))
        await queue.claim("other", 0, [Settlement(other, "r")])  # a stopping worker hands it back
        # Well within its idle wait (5 s) and its next lease deadline (5 s): woken by the baton.
        await wait_for_events(queue, USER, has_event(theirs, "job_completed"), timeout=2.0)


async def test_short_jobs_are_claimed_ahead_in_batches_and_released_on_stop(queue: Queue) -> None:
    from explorer_jobs.worker import PREFETCH_BATCHES

    worker = make_worker(queue, concurrency=2, grace_seconds=0)
    assert worker._wanted() == 2, "until jobs prove short, no claim ahead"
    worker._mean_duration = 0.001
    assert worker._wanted() == 2 * PREFETCH_BATCHES
    await queue.enqueue_many([EnqueueRequest("test_echo", {"value": i}, USER) for i in range(6)])
    worker.buffered.extend((await queue.claim(worker.worker_id, 6)).jobs)
    assert worker._wanted() is None, "enough claimed ahead: the next call waits for a batch to finish"
    await worker._drain()
    [counts] = await queue.counts(USER)
    assert counts.counts["queued"] == 6 and counts.counts["active"] == 0, "claimed-ahead jobs go back at once"
