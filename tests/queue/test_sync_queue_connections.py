"""The blocking producer's own connections (`SyncQueue._run_enqueue`): a dropped connection, a lost
reply and a flushed script cache are recovered from, with each job written once; threads share a
few connections, and close() gives them back to the pool."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis as redis_py
from redis.backoff import NoBackoff
from redis.retry import Retry

from explorer_jobs import sync_queue as sync_queue_module
from explorer_jobs.settings import Settings
from explorer_jobs.sync_queue import SyncQueue, WireConnection
from tests.conftest import TEST_REDIS_URL, queue_settings
from tests.support.redis_urls import flushed_db

USER = "wire-user"


@pytest.fixture
def inspector() -> Iterator[redis_py.Redis]:
    with flushed_db(TEST_REDIS_URL) as client:
        yield client


@pytest.fixture
def settings(inspector: redis_py.Redis) -> Settings:
    return queue_settings(TEST_REDIS_URL)


@pytest.fixture
def sync_queue(settings: Settings) -> Iterator[SyncQueue]:
    queue = SyncQueue.connect(settings)
    yield queue
    queue.close()


def held_connection(queue: SyncQueue) -> WireConnection:
    [(conn, _)] = queue._idle
    return conn


def client_id(conn: WireConnection) -> int:
    conn.send_command("CLIENT", "ID")
    answer: int = conn.read_response()
    return answer


def assert_queued_once(inspector: redis_py.Redis, queue: SyncQueue, job_ids: list[str]) -> None:
    """Every job exists once: in the hash, the queued set, the user's index, the counters and
    one job_queued event each."""
    assert all(inspector.exists(queue.keys.job(job_id)) for job_id in job_ids)
    assert sorted(inspector.zrange(queue.keys.queued, 0, -1)) == sorted(job_ids)
    assert sorted(inspector.zrange(queue.keys.user_jobs(USER), 0, -1)) == sorted(job_ids)
    assert inspector.hget(queue.keys.counts, "test_echo|queued") == str(len(job_ids))
    assert inspector.get(queue.keys.prefix + "seq") == str(len(job_ids))
    assert inspector.hget(queue.keys.user_counts(USER), "test_echo|queued") == str(len(job_ids))
    events = [json.loads(fields["d"]) for _, fields in inspector.xrange(queue.keys.events(USER))]
    assert sorted(e["jobId"] for e in events if e["type"] == "job_queued") == sorted(job_ids)


def test_a_connection_killed_between_calls_is_replaced(
    sync_queue: SyncQueue, inspector: redis_py.Redis
) -> None:
    # Used a moment ago, so not checked before the send: the read fails and the retry reconnects.
    first = sync_queue.enqueue("test_echo", {"value": 1}, user_id=USER)
    conn = held_connection(sync_queue)
    killed = client_id(conn)
    assert inspector.client_kill_filter(_id=killed) == 1
    second = sync_queue.enqueue("test_echo", {"value": 2}, user_id=USER)
    assert second.created and held_connection(sync_queue) is conn and client_id(conn) != killed
    assert_queued_once(inspector, sync_queue, [first.job.job_id, second.job.job_id])


def test_a_connection_closed_while_idle_is_replaced_before_the_send(
    sync_queue: SyncQueue, inspector: redis_py.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync_queue_module, "STALE_CHECK_SECONDS", 0.0)
    first = sync_queue.enqueue("test_echo", {"value": 1}, user_id=USER)
    conn = held_connection(sync_queue)
    assert inspector.client_kill_filter(_id=client_id(conn)) == 1
    # No retry allowed: the check must have replaced the connection before anything was sent.
    monkeypatch.setattr(conn, "retry", Retry(NoBackoff(), 0))
    second = sync_queue.enqueue("test_echo", {"value": 2}, user_id=USER)
    assert_queued_once(inspector, sync_queue, [first.job.job_id, second.job.job_id])


def test_a_lost_reply_is_sent_again_and_the_job_written_once(
    sync_queue: SyncQueue, inspector: redis_py.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync_queue.enqueue("test_echo", {"value": 1}, user_id=USER)
    conn = held_connection(sync_queue)
    read = conn.read_response
    lost: list[Any] = []

    def lose_the_first_reply() -> Any:
        reply = read()  # Redis ran the script; its answer goes missing on the way back
        if not lost:
            lost.append(reply)
            conn.disconnect()
            raise redis_py.ConnectionError("connection reset")
        return reply

    monkeypatch.setattr(conn, "read_response", lose_the_first_reply)
    result = sync_queue.enqueue("test_echo", {"value": 2}, user_id=USER)
    assert lost and lost[0][0][0] == result.job.job_id  # the resend was the same call
    assert result.created and result.job.status == "queued"
    first_id = inspector.zrange(sync_queue.keys.queued, 0, 0)[0]
    assert_queued_once(inspector, sync_queue, [first_id, result.job.job_id])


def test_a_call_cut_short_leaves_no_reply_behind(
    sync_queue: SyncQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync_queue.enqueue("test_echo", {"value": 1}, user_id=USER)
    conn = held_connection(sync_queue)

    def interrupted() -> Any:
        raise RuntimeError("interrupted before the reply was read")

    monkeypatch.setattr(conn, "read_response", interrupted)
    with pytest.raises(RuntimeError):
        sync_queue.enqueue("test_echo", {"value": 2}, user_id=USER)
    monkeypatch.undo()
    # The unread reply went with its socket: this call reads its own.
    third = sync_queue.enqueue("test_echo", {"value": 3}, user_id=USER)
    assert sync_queue.get(third.job.job_id).data["value"] == 3


def test_a_flushed_script_cache_is_filled_again(sync_queue: SyncQueue, inspector: redis_py.Redis) -> None:
    ids = [sync_queue.enqueue("test_echo", {"value": 1}, user_id=USER).job.job_id]
    inspector.script_flush()
    ids += [sync_queue.enqueue("test_echo", {"value": i}, user_id=USER).job.job_id for i in (2, 3)]
    assert inspector.script_exists(sync_queue._enqueue.sha) == [True]
    assert_queued_once(inspector, sync_queue, ids)


def test_threads_share_a_few_connections(sync_queue: SyncQueue, inspector: redis_py.Redis) -> None:
    threads, per_thread = 8, 50
    opened_before = int(inspector.info("stats")["total_connections_received"])
    ids: list[str] = []
    start = threading.Barrier(threads)

    def produce() -> None:
        start.wait()
        for i in range(per_thread):
            ids.append(sync_queue.enqueue("test_echo", {"value": i}, user_id=USER).job.job_id)

    workers = [threading.Thread(target=produce) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(set(ids)) == threads * per_thread
    assert_queued_once(inspector, sync_queue, ids)
    opened = int(inspector.info("stats")["total_connections_received"]) - opened_before
    assert 1 <= opened <= threads  # 400 calls, a connection per thread at most
    assert 1 <= len(sync_queue._idle) <= sync_queue._idle_cap


def test_close_gives_the_connections_back(settings: Settings, inspector: redis_py.Redis) -> None:
    # The caller's own pool outlives the queue: what the queue held must be back in it.
    pool = redis_py.ConnectionPool.from_url(TEST_REDIS_URL, decode_responses=True, max_connections=8)
    queue = SyncQueue(redis_py.Redis(connection_pool=pool), settings)
    ready = threading.Barrier(4)

    def produce() -> None:
        ready.wait()
        for i in range(20):
            queue.enqueue("test_echo", {"value": i}, user_id=USER)

    workers = [threading.Thread(target=produce) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert 1 <= len(queue._idle) <= 2  # a quarter of the pool's 8 at most
    queue.close()
    assert not queue._idle
    taken = [pool.get_connection() for _ in range(8)]  # MaxConnectionsError if one was kept
    for conn in taken:
        pool.release(conn)
    pool.disconnect()


def test_a_small_pool_is_not_emptied_by_the_enqueue(settings: Settings, inspector: redis_py.Redis) -> None:
    # A pool of one: a connection kept by the enqueue would leave get() waiting for it.
    pool = redis_py.BlockingConnectionPool.from_url(
        TEST_REDIS_URL, decode_responses=True, max_connections=1, timeout=1
    )
    queue = SyncQueue(redis_py.Redis(connection_pool=pool), settings)
    queued = queue.enqueue("test_echo", {"value": 1}, user_id=USER)
    assert queue.get(queued.job.job_id) == queued.job
    queue.close()
    pool.disconnect()
