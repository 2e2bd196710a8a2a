"""db-explorer-jobs adapter for the peer benchmark (../shared/bench/peers).

Enqueues through the project's Python API (`Queue.enqueue`, one script call per job, and
`Queue.enqueue_many` for the bulk row) and runs the project's own worker command,
`python -m explorer_jobs worker --import ours_adapter`. Progress, leases, cancellation checks and
events stay on: every job still gets its token, its state changes and its events.
"""

import os
import sys

from common import REDIS_URL, record
from pydantic import BaseModel

# The worker reads its configuration from the environment, as in production.
os.environ.setdefault("REDIS_URL", REDIS_URL)
from explorer_jobs.jobtypes import JobTypeSpec, register_job_type
from explorer_jobs.processors import processor

PACKAGES = ["db-explorer-jobs", "redis", "hiredis"]
DEFAULT_CONCURRENCY = "1 process, WORKER_CONCURRENCY=5 (asyncio)"
CONC10 = "--concurrency 10"


class NoopPayload(BaseModel):
    t: float


register_job_type(JobTypeSpec("bench_noop", NoopPayload, max_attempts=1))


@processor("bench_noop")
async def noop(ctx, payload: NoopPayload) -> None:
    record(payload.t)


class Client:
    async def open(self):
        from explorer_jobs.queue import Queue
        from explorer_jobs.redis_client import create_redis

        self.redis = create_redis(REDIS_URL)
        self.q = Queue(self.redis)

    async def enqueue(self, t):
        await self.q.enqueue("bench_noop", {"t": t}, user_id="bench")

    async def enqueue_bulk(self, ts):
        from explorer_jobs.queue import EnqueueRequest

        await self.q.enqueue_many([EnqueueRequest("bench_noop", {"t": t}, "bench") for t in ts])

    async def close(self):
        await self.redis.aclose()


def worker_cmd(conc):
    cmd = [sys.executable, "-m", "explorer_jobs", "worker", "--import", "ours_adapter"]
    return cmd + (["--concurrency", str(conc)] if conc else [])


def lib_done(r, n):
    # Every job reached a terminal state: nothing waiting or leased, n completed.
    prefix = "ej:{default}:"
    if r.zcard(prefix + "queued") or r.zcard(prefix + "delayed") or r.zcard(prefix + "active"):
        return False
    done = r.hget(prefix + "counts", "bench_noop|completed")
    return done is not None and int(done) >= n
