"""The baselines of `http_bench.py`, under the same uvicorn as the enqueue function.

- `app`: a bare FastAPI endpoint at the enqueue path that parses the body and answers 202 (no auth,
  no store, no Redis): the framework's ceiling on this machine.
- `app_with_enqueue`: the same, plus the one thing the route cannot skip, `Queue.enqueue` (one
  Redis round trip); no auth, no connection lookup, no rate limit.
"""

from __future__ import annotations

import uuid

from fastapi import FastAPI, Response
from pydantic import BaseModel

from explorer_jobs.queue import Queue
from explorer_jobs.redis_client import create_redis

app = FastAPI()
app_with_enqueue = FastAPI()
_queue: Queue | None = None


class Body(BaseModel):
    priority: int = 5


@app.post("/api/connections/{id}/train-schema", status_code=202)
async def train_schema(id: str, response: Response, body: Body | None = None) -> dict[str, str]:
    job_id = str(uuid.uuid4())
    response.headers["Location"] = f"/api/jobs/{job_id}"
    return {"jobId": job_id, "jobType": "schema_training", "status": "queued"}


@app_with_enqueue.post("/api/connections/{id}/train-schema", status_code=202)
async def train_schema_enqueued(id: str, response: Response, body: Body | None = None) -> dict[str, str]:
    global _queue
    if _queue is None:
        _queue = Queue(create_redis())
    queued = await _queue.enqueue(
        "schema_training", {"connectionId": id}, user_id="bench", priority=body.priority if body else 5
    )
    response.headers["Location"] = f"/api/jobs/{queued.job.job_id}"
    return {"jobId": queued.job.job_id, "jobType": "schema_training", "status": queued.job.status}
