"""The queue's transitions and events, one script each, on one Redis and on a 3-node cluster."""

from __future__ import annotations

import asyncio
import json

import pytest

from explorer_jobs.errors import Conflict, IdempotencyConflict, InvalidInput, LeaseLost, NotFound
from explorer_jobs.models import JobStatus
from explorer_jobs.queue import EnqueueRequest, Queue, Settlement
from tests.support.events import read_events, types_of

USER = "alice"


async def enqueue(queue: Queue, value: object = 1, **options: object):  # type: ignore[no-untyped-def]
    return (await queue.enqueue("test_echo", {"value": value}, user_id=USER, **options)).job


async def test_enqueue_stores_the_job_and_emits_job_queued(queue: Queue) -> None:
    job = await enqueue(queue, "x", priority=3)
    assert job.status is JobStatus.QUEUED and job.attempts == 0 and job.priority == 3
    stored = await queue.get(job.job_id)
    assert stored.data["value"] == "x"
    assert stored.created_at is not None and stored.started_at is None
    [event] = await read_events(queue, USER)
    assert event["type"] == "job_queued" and event["jobId"] == job.job_id and event["status"] == "queued"
    assert event["timestamp"].endswith("Z")


async def test_payload_is_validated_by_the_job_types_model(queue: Queue) -> None:
    with pytest.raises(InvalidInput):
        await queue.enqueue("test_echo", {"steps": "many"}, user_id=USER)
    with pytest.raises(InvalidInput):
        await enqueue(queue, priority=11)
    assert await read_events(queue, USER) == []


async def test_claim_takes_the_most_urgent_first_then_fifo(queue: Queue) -> None:
    low = [await enqueue(queue, i, priority=7) for i in range(3)]
    urgent = [await enqueue(queue, i, priority=1) for i in range(3)]
    claimed = await queue.claim("w", 10)
    assert [j.job_id for j in claimed.jobs] == [j.job_id for j in urgent + low]


async def test_claim_gives_a_lease_with_a_token_and_emits_job_started(queue: Queue) -> None:
    job = await enqueue(queue)
    [claimed] = (await queue.claim("w1", 5)).jobs
    assert claimed.token.startswith("w1:") and claimed.attempt == 1
    stored = await queue.get(job.job_id)
    assert stored.status is JobStatus.ACTIVE and stored.attempts == 1 and stored.started_at is not None
    assert types_of(await read_events(queue, USER), job.job_id) == ["job_queued", "job_started"]
    assert (await queue.claim("w2", 5)).jobs == []


async def test_progress_then_complete(queue: Queue) -> None:
    job = await enqueue(queue)
    [c] = (await queue.claim("w", 1)).jobs
    assert await queue.progress(c.job_id, c.token, 40, "reading tables") is False
    mid = await queue.get(job.job_id)
    assert (mid.progress, mid.message) == (40, "reading tables")
    result = await queue.claim("w", 0, [Settlement(c, "c", json.dumps({"tables": 3}))])
    assert result.accepted == [True]
    done = await queue.get(job.job_id)
    assert done.status is JobStatus.COMPLETED and done.progress == 100 and done.result == {"tables": 3}
    assert done.finished_at is not None
    events = await read_events(queue, USER)
    assert types_of(events, job.job_id) == ["job_queued", "job_started", "job_progress", "job_completed"]
    assert events[-1]["result"] == {"tables": 3} and events[-1]["progress"] == 100


async def test_a_stale_token_cannot_complete_or_report(queue: Queue) -> None:
    job = await enqueue(queue)
    [c] = (await queue.claim("w1", 1, lease_ms=1)).jobs
    await asyncio.sleep(0.01)  # let the 1 ms lease run out (time is the subject here)
    [again] = (await queue.claim("w2", 1)).jobs  # the claim recovers the stalled lease first
    assert again.job_id == job.job_id and again.token != c.token and again.attempt == 2
    stale = await queue.claim("w1", 0, [Settlement(c, "c", '"stale"')])
    assert stale.accepted == [False]
    with pytest.raises(LeaseLost):
        await queue.progress(c.job_id, c.token, 50)
    with pytest.raises(LeaseLost):
        await queue.cancel_requested(c.job_id, c.token)
    assert (await queue.claim("w2", 0, [Settlement(again, "c", '"fresh"')])).accepted == [True]
    done = await queue.get(job.job_id)
    assert done.result == "fresh" and done.status is JobStatus.COMPLETED
    assert types_of(await read_events(queue, USER), job.job_id) == [
        "job_queued",
        "job_started",
        "job_retrying",
        "job_started",
        "job_completed",
    ]


async def test_too_many_stalls_fail_the_job(backend) -> None:  # type: ignore[no-untyped-def]
    client, settings = backend
    queue = Queue(client, settings.model_copy(update={"MAX_STALLS": 1}))
    job = await enqueue(queue)
    for _ in range(2):
        await queue.claim("w", 1, lease_ms=1)
        await asyncio.sleep(0.01)  # the lease must run out
    await queue.maintain()
    failed = await queue.get(job.job_id)
    assert failed.status is JobStatus.FAILED and "stalled 2 times" in (failed.error or "")
    assert types_of(await read_events(queue, USER), job.job_id)[-1] == "job_failed"


async def test_retryable_failure_goes_to_delayed_then_due(queue: Queue) -> None:
    job = await enqueue(queue)
    [c] = (await queue.claim("w", 1)).jobs
    await queue.claim("w", 0, [Settlement(c, "f", "connection reset", "40")])
    delayed = await queue.get(job.job_id)
    assert delayed.status is JobStatus.DELAYED and delayed.error == "connection reset"
    assert (await queue.claim("w", 1)).jobs == []  # not due yet
    await asyncio.sleep(0.05)  # the 40 ms backoff is the subject
    [again] = (await queue.claim("w", 1)).jobs
    assert again.attempt == 2
    assert types_of(await read_events(queue, USER), job.job_id) == [
        "job_queued",
        "job_started",
        "job_retrying",
        "job_queued",
        "job_started",
    ]


async def test_permanent_and_exhausted_failures_fail_at_once(queue: Queue) -> None:
    permanent = await enqueue(queue, max_attempts=5)
    last_try = await enqueue(queue, max_attempts=1)
    a, b = (await queue.claim("w", 2)).jobs
    await queue.claim("w", 0, [Settlement(a, "f", "bad password", "-1"), Settlement(b, "f", "boom", "10")])
    for job_id, error in ((permanent.job_id, "bad password"), (last_try.job_id, "boom")):
        failed = await queue.get(job_id)
        assert failed.status is JobStatus.FAILED and failed.error == error
    events = await read_events(queue, USER)
    assert events[-1]["type"] == "job_failed" and events[-1]["error"] == "boom"


async def test_delayed_job_becomes_due_without_another_process(queue: Queue) -> None:
    job = await enqueue(queue, delay=0.05)
    assert job.status is JobStatus.DELAYED
    first = await queue.claim("w", 1)
    assert first.jobs == [] and 0 < first.next_due_ms <= 50
    await asyncio.sleep(first.next_due_ms / 1000 + 0.01)
    [c] = (await queue.claim("w", 1)).jobs
    assert c.job_id == job.job_id


async def test_idempotency_key_under_50_concurrent_enqueues(queue: Queue) -> None:
    results = await asyncio.gather(
        *(
            queue.enqueue("test_echo", {"value": 1}, user_id=USER, idempotency_key="train-1")
            for _ in range(50)
        )
    )
    assert len({r.job.job_id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert len(await read_events(queue, USER)) == 1
    with pytest.raises(IdempotencyConflict):
        await queue.enqueue("test_echo", {"value": 2}, user_id=USER, idempotency_key="train-1")
    # Keys are per user.
    other = await queue.enqueue("test_echo", {"value": 1}, user_id="bob", idempotency_key="train-1")
    assert other.created


async def test_cancel_queued_at_once_and_active_at_checkpoint(queue: Queue) -> None:
    queued = await enqueue(queue)
    delayed = await enqueue(queue, delay=60)
    cancelled = await queue.cancel(queued.job_id, user_id=USER)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.finished_at is not None
    assert (await queue.cancel(delayed.job_id, user_id=USER)).status is JobStatus.CANCELLED
    assert (await queue.claim("w", 5)).jobs == []

    active = await enqueue(queue)
    [c] = (await queue.claim("w", 1)).jobs
    flagged = await queue.cancel(active.job_id, user_id=USER)
    assert flagged.status is JobStatus.ACTIVE
    assert await queue.cancel_requested(c.job_id, c.token) is True
    assert await queue.progress(c.job_id, c.token, 10) is True
    assert await queue.renew([(c.job_id, c.token)]) == [1]
    await queue.claim("w", 0, [Settlement(c, "x", "cancelled at a checkpoint")])
    assert (await queue.get(active.job_id)).status is JobStatus.CANCELLED
    with pytest.raises(Conflict):
        await queue.cancel(active.job_id, user_id=USER)
    assert types_of(await read_events(queue, USER), active.job_id)[-1] == "job_cancelled"


async def test_a_stalled_job_whose_cancel_was_requested_ends_cancelled(queue: Queue) -> None:
    job = await enqueue(queue)
    await queue.claim("w", 1, lease_ms=1)
    await queue.cancel(job.job_id, user_id=USER)
    await asyncio.sleep(0.01)  # the lease must run out
    assert (await queue.claim("w2", 1)).jobs == []
    assert (await queue.get(job.job_id)).status is JobStatus.CANCELLED


async def test_a_job_cancelled_while_running_is_not_retried_after_a_retryable_failure(queue: Queue) -> None:
    # Found while modelling the queue (tests/chaos/test_queue_model.py): the failure used to send
    # it to `delayed`, so the job the user had cancelled ran again.
    job = await enqueue(queue)
    [c] = (await queue.claim("w", 1)).jobs
    await queue.cancel(job.job_id, user_id=USER)
    assert (await queue.claim("w", 0, [Settlement(c, "f", "boom", "10")])).accepted == [True]
    assert (await queue.get(job.job_id)).status is JobStatus.CANCELLED
    assert types_of(await read_events(queue, USER), job.job_id)[-1] == "job_cancelled"
    assert await queue.redis.zcard(queue.keys.delayed) == 0


async def test_someone_elses_job_is_not_found(queue: Queue) -> None:
    job = await enqueue(queue)
    for call in (
        queue.get(job.job_id, user_id="mallory"),
        queue.cancel(job.job_id, user_id="mallory"),
        queue.retry(job.job_id, user_id="mallory"),
        queue.get("no-such-job", user_id=USER),
    ):
        with pytest.raises(NotFound):
            await call
    with pytest.raises(NotFound):
        await queue.get(job.job_id, job_type="schema_training")


async def test_manual_retry_of_failed_and_cancelled(queue: Queue) -> None:
    job = await enqueue(queue, max_attempts=1)
    [c] = (await queue.claim("w", 1)).jobs
    with pytest.raises(Conflict):
        await queue.retry(job.job_id, user_id=USER)
    await queue.claim("w", 0, [Settlement(c, "f", "boom", "10")])
    retried = await queue.retry(job.job_id, user_id=USER)
    assert retried.status is JobStatus.QUEUED and retried.error is None and retried.finished_at is None
    assert retried.attempts == 1 and retried.max_attempts == 2
    [again] = (await queue.claim("w", 1)).jobs
    assert again.job_id == job.job_id and again.attempt == 2


async def test_release_puts_the_job_back_at_once(queue: Queue) -> None:
    first = await enqueue(queue, 1)
    second = await enqueue(queue, 2)
    [c] = (await queue.claim("w1", 1)).jobs
    assert c.job_id == first.job_id
    await queue.claim("w1", 0, [Settlement(c, "r")])
    [again] = (await queue.claim("w2", 1)).jobs
    assert again.job_id == first.job_id, "a released job keeps its place ahead of later ones"
    assert second.job_id != again.job_id


async def test_a_replayed_claim_gets_its_first_reply_and_writes_nothing(queue: Queue) -> None:
    """The client sends a call again when a dropped connection lost its reply: the same claim id
    from the same worker answers as the first call did, without settling or claiming twice."""
    ids = [(await enqueue(queue, i)).job_id for i in range(6)]
    a, b = (await queue.claim("w", 2, claim_id="1")).jobs
    settlements = [Settlement(a, "c", "{}"), Settlement(b, "f", "boom", "10")]
    first = await queue.claim("w", 2, settlements, claim_id="2")
    assert first.accepted == [True, True] and [j.job_id for j in first.jobs] == ids[2:4]
    events = await read_events(queue, USER)
    counts = await queue.counts(USER)
    again = await queue.claim("w", 2, settlements, claim_id="2")
    assert again == first
    assert await read_events(queue, USER) == events and await queue.counts(USER) == counts
    assert [await in_sets(queue, i) for i in ids] == [
        ["finished"],
        ["delayed"],
        ["active"],
        ["active"],
        ["queued"],
        ["queued"],
    ]
    assert [(await queue.get(i)).attempts for i in ids] == [1, 1, 1, 1, 0, 0]
    # A new call runs: the settlements are spent, the next job is claimed.
    fresh = await queue.claim("w", 1, settlements, claim_id="3")
    assert fresh.accepted == [False, False] and [j.job_id for j in fresh.jobs] == ids[4:5]
    # Claim ids are per worker: another worker's "3" is a call of its own.
    other = await queue.claim("w2", 1, claim_id="3")
    assert [j.job_id for j in other.jobs] == ids[5:]
    with pytest.raises(InvalidInput):
        await queue.claim("w", 1, claim_id="4|5")


async def make_suspects(queue: Queue, n: int, **options: object) -> list[str]:
    """Enqueue `n` jobs, claim them for a "worker" that dies: their leases run out, they stall."""
    ids = [(await enqueue(queue, f"suspect {i}", **options)).job_id for i in range(n)]
    claimed = (await queue.claim("doomed", n, lease_ms=1, holds_suspect=True)).jobs
    assert [c.job_id for c in claimed] == ids
    await asyncio.sleep(0.01)  # the leases must run out (time is the subject)
    assert (await queue.maintain())[1] == n
    return ids


async def in_sets(queue: Queue, job_id: str) -> list[str]:
    names = ("queued", "suspect", "delayed", "active", "finished")
    scores = [await queue.redis.zscore(getattr(queue.keys, name), job_id) for name in names]
    return [name for name, score in zip(names, scores, strict=True) if score is not None]


async def test_a_job_whose_lease_ran_out_waits_as_a_suspect_in_its_place(queue: Queue) -> None:
    [sid] = await make_suspects(queue, 1)
    assert await in_sets(queue, sid) == ["suspect"]
    priority, seq, stalls = await queue.redis.hmget(queue.keys.job(sid), ["priority", "seq", "stalls"])
    assert await queue.redis.zscore(queue.keys.suspect, sid) == int(priority) * 10**14 + int(seq)
    assert stalls == "1"
    job = await queue.get(sid)
    assert job.status is JobStatus.QUEUED, "the API knows no suspects: it is queued"
    [counts] = await queue.counts(USER)
    assert counts.counts["queued"] == 1 and counts.counts["active"] == 0
    assert types_of(await read_events(queue, USER), sid) == ["job_queued", "job_started", "job_retrying"]
    # Its own wake baton, which a worker holding a suspect does not wait on.
    assert await queue.redis.llen(queue.keys.wake) == 0
    assert await queue.redis.llen(queue.keys.suspect_wake) == 1
    assert await queue.wait_for_work(0.05, suspects=False) is False  # the bounded wait is the subject
    assert await queue.wait_for_work(5) is True


async def test_a_worker_holding_a_suspect_gets_no_other_one_holding_none_gets_one(queue: Queue) -> None:
    s1, s2 = await make_suspects(queue, 2)
    fresh = [(await enqueue(queue, i)).job_id for i in range(2)]
    holder = (await queue.claim("holder", 10, holds_suspect=True)).jobs
    assert [(c.job_id, c.suspect) for c in holder] == [(fresh[0], False), (fresh[1], False)]
    [first] = (await queue.claim("free", 10)).jobs
    assert (first.job_id, first.suspect, first.stalls, first.attempt) == (s1, True, 1, 2)
    assert (await queue.claim("free", 10, holds_suspect=True)).jobs == []
    [second] = (await queue.claim("other", 10)).jobs
    assert second.job_id == s2 and second.suspect
    assert await queue.redis.zcard(queue.keys.suspect) == 0
    assert await queue.redis.llen(queue.keys.suspect_wake) == 0


async def test_suspects_and_queued_jobs_are_claimed_by_priority_then_fifo(queue: Queue) -> None:
    [s5] = await make_suspects(queue, 1)  # priority 5, the type's default
    [s9] = await make_suspects(queue, 1, priority=9)
    urgent = (await enqueue(queue, "urgent", priority=1)).job_id
    later = (await enqueue(queue, "later")).job_id  # priority 5, after s5
    low = (await enqueue(queue, "low", priority=9)).job_id  # after s9
    [c] = (await queue.claim("w1", 1)).jobs
    assert c.job_id == urgent, "a suspect does not jump ahead of more urgent work"
    claimed = (await queue.claim("w2", 5)).jobs
    assert [(c.job_id, c.suspect) for c in claimed] == [(s5, True), (later, False), (low, False)], (
        "one suspect a claim, in its place"
    )
    [c] = (await queue.claim("w3", 5)).jobs
    assert (c.job_id, c.suspect) == (s9, True)


async def test_cancel_a_suspect(queue: Queue) -> None:
    [sid] = await make_suspects(queue, 1)
    assert (await queue.cancel(sid, user_id=USER)).status is JobStatus.CANCELLED
    assert await in_sets(queue, sid) == ["finished"]
    assert await queue.redis.llen(queue.keys.suspect_wake) == 0
    [counts] = await queue.counts(USER)
    assert counts.counts["queued"] == 0 and counts.counts["cancelled"] == 1
    assert (await queue.claim("w", 5)).jobs == []
    assert types_of(await read_events(queue, USER), sid)[-1] == "job_cancelled"


async def test_a_suspect_stays_one_until_it_finishes_and_a_manual_retry_clears_it(queue: Queue) -> None:
    [sid] = await make_suspects(queue, 1, max_attempts=10)
    fresh = (await enqueue(queue, "fresh")).job_id
    claimed = (await queue.claim("w", 2)).jobs
    assert [(c.job_id, c.suspect) for c in claimed] == [(sid, True), (fresh, False)]
    # A stopping worker releases both: neither becomes more or less suspect than it was.
    await queue.claim("w", 0, [Settlement(c, "r") for c in claimed])
    assert (await in_sets(queue, sid), await in_sets(queue, fresh)) == (["suspect"], ["queued"])
    # A retryable failure: back from `delayed` as a suspect.
    [c] = (await queue.claim("w", 1, holds_suspect=True)).jobs
    assert c.job_id == fresh
    [c] = (await queue.claim("w2", 1)).jobs
    assert c.job_id == sid
    await queue.claim("w2", 0, [Settlement(c, "f", "boom", "20")])
    await asyncio.sleep(0.03)  # the 20 ms backoff is the subject
    assert (await queue.maintain())[0] == 1
    assert await in_sets(queue, sid) == ["suspect"]
    # Failed for good, then retried by its owner: a fresh start, not a suspect.
    [c] = (await queue.claim("w2", 1)).jobs
    assert c.suspect and c.attempt == 4
    await queue.claim("w2", 0, [Settlement(c, "f", "bad options", "-1")])
    await queue.retry(sid, user_id=USER)
    assert await in_sets(queue, sid) == ["queued"]
    [c] = (await queue.claim("w3", 1, holds_suspect=True)).jobs
    assert c.job_id == sid and not c.suspect


async def test_owner_stream_holds_each_jobs_events_in_order(queue: Queue) -> None:
    jobs = [await enqueue(queue, i) for i in range(5)]
    claimed = (await queue.claim("w", 5)).jobs
    for c in claimed:
        await queue.progress(c.job_id, c.token, 50, "half")
    await queue.claim("w", 0, [Settlement(c, "c", "null") for c in claimed])
    events = await read_events(queue, USER)
    ids = [e["_id"] for e in events]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    for job in jobs:
        assert types_of(events, job.job_id) == ["job_queued", "job_started", "job_progress", "job_completed"]
    assert await read_events(queue, "bob") == []


async def test_list_newest_first_with_filters_and_cursor(queue: Queue) -> None:
    jobs = [await enqueue(queue, i) for i in range(7)]
    await queue.cancel(jobs[2].job_id, user_id=USER)
    await queue.enqueue("test_echo", {"value": 0}, user_id="bob")
    seen: list[str] = []
    cursor = None
    while True:
        page = await queue.list_jobs(USER, limit=3, cursor=cursor)
        seen += [j.job_id for j in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [j.job_id for j in reversed(jobs)]
    cancelled = await queue.list_jobs(USER, status=JobStatus.CANCELLED)
    assert [j.job_id for j in cancelled.jobs] == [jobs[2].job_id] and cancelled.next_cursor is None
    assert (await queue.list_jobs(USER, job_type="schema_training")).jobs == []
    with pytest.raises(InvalidInput):
        await queue.list_jobs(USER, limit=101)
    with pytest.raises(InvalidInput):
        await queue.list_jobs(USER, cursor="nonsense")


async def test_counts_per_type_and_status(queue: Queue) -> None:
    a = await enqueue(queue)
    await enqueue(queue, delay=30)
    await queue.enqueue("test_echo", {"value": 0}, user_id="bob")
    await queue.cancel(a.job_id, user_id=USER)
    [mine] = await queue.counts(USER)
    assert mine.job_type == "test_echo"
    assert mine.counts == {
        "queued": 0,
        "delayed": 1,
        "active": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 1,
    }
    [everyone] = await queue.counts()
    assert everyone.counts["queued"] == 1 and everyone.counts["cancelled"] == 1


async def test_bulk_enqueue_gives_each_job_its_event(queue: Queue) -> None:
    results = await queue.enqueue_many(
        [EnqueueRequest("test_echo", {"value": i}, USER, priority=1 + i % 10) for i in range(2500)]
    )
    assert len({r.job.job_id for r in results}) == 2500
    assert await queue.redis.xlen(queue.keys.events(USER)) >= 1000  # trimmed to the cap, approximately
    [counts] = await queue.counts(USER)
    assert counts.counts["queued"] == 2500


async def test_retention_lists_expired_jobs_and_forgets_them_once_archived(backend) -> None:  # type: ignore[no-untyped-def]
    client, settings = backend
    queue = Queue(client, settings.model_copy(update={"JOB_RETENTION_SECONDS": 1}))
    job = await enqueue(queue)
    await queue.cancel(job.job_id, user_id=USER)
    assert (await queue.maintain())[2] == []
    await asyncio.sleep(1.05)  # the retention is the subject
    [expired] = (await queue.maintain())[2]
    assert expired.job_id == job.job_id and expired.status is JobStatus.CANCELLED
    assert (await queue.get(job.job_id)).job_id == job.job_id, "listing deletes nothing"
    assert await queue.forget([job.job_id]) == 1
    with pytest.raises(NotFound):
        await queue.get(job.job_id)
    assert (await queue.list_jobs(USER)).jobs == []
    [counts] = await queue.counts(USER)
    assert counts.counts["cancelled"] == 0


async def test_forget_keeps_a_job_retried_since_it_was_listed(backend) -> None:  # type: ignore[no-untyped-def]
    client, settings = backend
    queue = Queue(client, settings.model_copy(update={"JOB_RETENTION_SECONDS": 1}))
    job = await enqueue(queue)
    await queue.cancel(job.job_id, user_id=USER)
    await asyncio.sleep(1.05)  # the retention is the subject
    [expired] = (await queue.maintain())[2]
    await queue.retry(job.job_id, user_id=USER)
    assert await queue.forget([expired.job_id]) == 0
    assert (await queue.get(job.job_id)).status is JobStatus.QUEUED


async def test_cancel_matching_cancels_a_connections_jobs(queue: Queue) -> None:
    keep = await enqueue(queue, "keep")
    drop = await enqueue(queue, "drop")
    done = await queue.cancel_matching(USER, "test_echo", "value", "drop")
    assert done == [drop.job_id]
    assert (await queue.get(keep.job_id)).status is JobStatus.QUEUED


async def test_a_spent_rate_limit_window_refuses_the_enqueue_and_writes_nothing(queue: Queue) -> None:
    from explorer_jobs.errors import RateLimited
    from explorer_jobs.queue import RateLimit

    limit = RateLimit(USER, limit=2, window_seconds=60)
    for _ in range(2):
        await queue.enqueue("test_echo", {"value": 1}, user_id=USER, rate_limit=limit)
    with pytest.raises(RateLimited) as refused:
        await queue.enqueue("test_echo", {"value": 1}, user_id=USER, rate_limit=limit)
    assert 1 <= refused.value.retry_after <= 60
    [counts] = await queue.counts(USER)
    assert counts.counts["queued"] == 2 and len(await read_events(queue, USER)) == 2
    assert (
        await queue.enqueue("test_echo", {"value": 1}, user_id="bob", rate_limit=RateLimit("bob", 2, 60))
    ).created
