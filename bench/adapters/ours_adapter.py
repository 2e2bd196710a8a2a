"""db-explorer-jobs adapter for the peer benchmark (../shared/bench/peers).

Enqueues through the project's blocking producer (`SyncQueue.enqueue`, one script call per job,
and `SyncQueue.enqueue_many` for the bulk row; `ours_async_adapter.py` is the same through the
asyncio `Queue`) and runs the project's own worker command,
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
    """The blocking producer, as a script or a synchronous web app would queue jobs."""

    def open(self):
        from explorer_jobs.settings import Settings
        from explorer_jobs.sync_queue import SyncQueue

        self.q = SyncQueue.connect(Settings(REDIS_URL=REDIS_URL))

    def enqueue(self, t):
        self.q.enqueue("bench_noop", {"t": t}, user_id="bench")

    def enqueue_bulk(self, ts):
        from explorer_jobs.enqueueing import EnqueueRequest

        self.q.enqueue_many([EnqueueRequest("bench_noop", {"t": t}, "bench") for t in ts])

    def close(self):
        self.q.close()


def worker_cmd(conc):
    cmd = [sys.executable, "-m", "explorer_jobs", "worker", "--import", "ours_adapter"]
    return cmd + (["--concurrency", str(conc)] if conc else [])


def lib_done(r, n):
    # Every job reached a terminal state: nothing waiting or leased, n completed.
    prefix = "ej:{default}:"
    if any(r.zcard(prefix + s) for s in ("queued", "suspect", "delayed", "active")):
        return False
    done = r.hget(prefix + "counts", "bench_noop|completed")
    return done is not None and int(done) >= n
