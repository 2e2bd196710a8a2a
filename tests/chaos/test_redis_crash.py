"""The queue's Redis (AOF, appendfsync always) killed with -9 and restarted during enqueue bursts,
with workers running: every enqueue call that returned is found afterwards, and once the workers
have run to the end no job is left active (nor queued)."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest
from redis.exceptions import RedisError

from explorer_jobs.models import JobStatus
from explorer_jobs.queue import EnqueueRequest, Queue
from explorer_jobs.redis_client import create_redis
from tests.conftest import queue_settings
from tests.support.fixtures import ThrowawayRedisFactory

from .support import EVENTS_MAXLEN, WAIT, Workers, await_stream, scale

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

USER = "crashy"
RESTARTS = scale("REDIS_KILLS")
PRODUCERS = 4


async def produce(queue: Queue, up: asyncio.Event, stop: asyncio.Event, acked: list[str]) -> int:
    """Enqueue in bursts (single calls and batches of 20) until `stop`; keep the id of every call
    that returned. Returns how many calls raised (their outcome is unknown: maybe written)."""
    rng = random.Random(id(acked))
    failures = 0
    while not stop.is_set():
        await up.wait()  # while the server is down: wait for its restart, not a sleep
        n = rng.choice([1, 1, 1, 20])
        reqs = [EnqueueRequest("test_echo", {"value": i}, USER) for i in range(n)]
        try:
            results = await queue.enqueue_many(reqs)
        except (RedisError, OSError):
            failures += 1
            continue
        acked.extend(r.job.job_id for r in results)
    return failures


@pytest.mark.timeout(60 + RESTARTS * 6)
async def test_enqueues_that_returned_survive_redis_kill_9_and_no_job_stays_active(
    throwaway_redis: ThrowawayRedisFactory, tmp_path: Path
) -> None:
    server = throwaway_redis(appendonly=True, appendfsync="always")
    # Short socket timeouts: a call in flight when the server dies fails fast rather than hanging.
    client = create_redis(server.url, cluster=False)
    queue = Queue(client, queue_settings(server.url, EVENTS_MAXLEN=EVENTS_MAXLEN, LEASE_SECONDS=1.0))
    workers = Workers(server.url, queue.name, tmp_path, LEASE_SECONDS="1")
    try:
        for _ in range(2):
            workers.start(concurrency=5)
        up, stop = asyncio.Event(), asyncio.Event()
        up.set()
        acked: list[str] = []
        producers = [asyncio.create_task(produce(queue, up, stop, acked)) for _ in range(PRODUCERS)]
        rng = random.Random(RESTARTS)
        for _ in range(RESTARTS):
            before = len(acked)
            await asyncio.sleep(rng.uniform(0.2, 0.6))  # a burst's length: the chaos schedule
            assert len(acked) > before, "enqueues returned during the burst"
            up.clear()
            # kill -9 and start again on the same port and data dir (the AOF is replayed).
            await asyncio.to_thread(server.restart, crash=True)
            up.set()
        await asyncio.sleep(0.3)  # a last burst after the last restart
        stop.set()
        failures = sum(await asyncio.gather(*producers))

        # Every enqueue that returned is in Redis.
        pipe = client.pipeline(transaction=False)
        for job_id in acked:
            pipe.exists(queue.keys.job(job_id))
        found = await pipe.execute()
        lost = [j for j, ok in zip(acked, found, strict=True) if not ok]
        assert not lost, f"{len(lost)} of {len(acked)} acknowledged jobs lost"

        # The workers run everything to the end: nothing stays active or queued.
        deadline = time.monotonic() + WAIT
        while True:
            [counts] = await queue.counts(USER)
            if counts.counts["queued"] + counts.counts["active"] + counts.counts["delayed"] == 0:
                break
            assert time.monotonic() < deadline, f"left unfinished: {counts.counts}"
            await await_stream(queue, USER, "$", timeout=0.5)
        assert await client.zcard(queue.keys.active) == 0
        assert await client.zcard(queue.keys.queued) == 0
        assert await client.zcard(queue.keys.suspect) == 0
        statuses = {(await queue.get(j)).status for j in acked}
        assert statuses == {JobStatus.COMPLETED}, statuses
        total = await client.zcard(queue.keys.user_jobs(USER))
        assert len(acked) <= total <= len(acked) + failures * 20, "only unknown calls may add jobs"
        print(
            f"\nredis crash: {RESTARTS} kill -9, {len(acked)} acknowledged enqueues all found, "
            f"{failures} calls raised, {total - len(acked)} of theirs written anyway"
        )
    finally:
        workers.stop_all()
        await client.aclose()
