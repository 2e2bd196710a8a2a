"""db-explorer-jobs through its asyncio API (`Queue.enqueue` / `Queue.enqueue_many`), as the HTTP
functions queue jobs; the worker, its command and the completion check are `ours_adapter`'s."""

from common import REDIS_URL
from ours_adapter import CONC10, DEFAULT_CONCURRENCY, PACKAGES, lib_done, worker_cmd  # noqa: F401


class Client:
    async def open(self):
        from explorer_jobs.queue import Queue
        from explorer_jobs.redis_client import create_redis

        self.redis = create_redis(REDIS_URL)
        self.q = Queue(self.redis)

    async def enqueue(self, t):
        await self.q.enqueue("bench_noop", {"t": t}, user_id="bench")

    async def enqueue_bulk(self, ts):
        from explorer_jobs.enqueueing import EnqueueRequest

        await self.q.enqueue_many([EnqueueRequest("bench_noop", {"t": t}, "bench") for t in ts])

    async def close(self):
        await self.redis.aclose()
