"""Concurrent enqueues share a pipeline (`script_batching.py`), and each still behaves alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio.connection
from redis.exceptions import TimeoutError as RedisTimeoutError

from explorer_jobs.errors import IdempotencyConflict
from explorer_jobs.queue import Queue
from explorer_jobs.redis_client import RedisClient, create_redis
from explorer_jobs.script_batching import ScriptBatcher
from tests.conftest import TEST_REDIS_URL, queue_settings
from tests.support.fixtures import ThrowawayRedisFactory

USER = "alice"
TIMEOUT = 0.3  # the client's socket timeout, where a test sets one


@pytest.fixture
async def queue(redis: RedisClient) -> AsyncIterator[Queue]:
    queue = Queue(redis, queue_settings(TEST_REDIS_URL))
    await redis.script_load(queue._scripts["enqueue"].script)  # batches count no NOSCRIPT resend
    yield queue


def _watch_batches(queue: Queue, monkeypatch: pytest.MonkeyPatch) -> list[list[bool]]:
    """Every batch the queue's enqueue batcher sends from now on: per call, whether it carries the
    script's text (EVAL) rather than its hash."""
    batcher = queue._enqueue_batcher
    assert isinstance(batcher, ScriptBatcher)
    batches: list[list[bool]] = []
    send = batcher._send_batch

    def recorded(link: Any, batch: list[Any]) -> None:
        batches.append([call.as_eval for call in batch])
        send(link, batch)

    monkeypatch.setattr(batcher, "_send_batch", recorded)
    return batches


@pytest.fixture
def sent(queue: Queue, monkeypatch: pytest.MonkeyPatch) -> list[list[bool]]:
    return _watch_batches(queue, monkeypatch)


def sizes(batches: list[list[bool]]) -> list[int]:
    return [len(batch) for batch in batches]


async def enqueue(queue: Queue, value: object, **options: Any) -> Any:
    return (await queue.enqueue("test_echo", {"value": value}, user_id=USER, **options)).job


async def stored_jobs(queue: Queue) -> int:
    return int(await queue.redis.zcard(queue.keys.user_jobs(USER)))  # type: ignore[misc]


async def test_concurrent_enqueues_share_round_trips_and_each_gets_its_own_job(
    queue: Queue, sent: list[list[bool]]
) -> None:
    jobs = await asyncio.gather(*(enqueue(queue, i) for i in range(50)))
    assert len({job.job_id for job in jobs}) == 50
    for i, job in enumerate(jobs):  # each caller got the reply to its own call
        assert job.data["value"] == i
        assert (await queue.get(job.job_id)).data["value"] == i
    assert sum(sizes(sent)) == 50 and len(sent) < 50
    assert await stored_jobs(queue) == 50


async def test_a_lone_call_is_sent_alone_at_once(queue: Queue, sent: list[list[bool]]) -> None:
    for i in range(3):
        await enqueue(queue, i)
    assert sizes(sent) == [1, 1, 1]


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
    queue: Queue, sent: list[list[bool]]
) -> None:
    kept = asyncio.ensure_future(enqueue(queue, "kept"))
    dropped = asyncio.ensure_future(enqueue(queue, "dropped"))
    # Both calls are now waiting for the batch sender, which has not run yet.
    await asyncio.sleep(0)
    dropped.cancel()
    job = await asyncio.wait_for(kept, 10)
    with pytest.raises(asyncio.CancelledError):
        await dropped
    assert sizes(sent) == [1] and job.data["value"] == "kept"
    assert await stored_jobs(queue) == 1


async def test_after_a_flush_the_script_text_is_sent_once_not_once_per_call(
    queue: Queue, sent: list[list[bool]]
) -> None:
    """NOSCRIPT: the first refused call goes again as EVAL, which loads the script for the others
    behind it in the same batch, sent again by hash."""
    await queue.redis.script_flush()
    jobs = await asyncio.gather(*(enqueue(queue, i) for i in range(10)))
    assert [job.data["value"] for job in jobs] == list(range(10))
    assert sent == [[False] * 10, [True] + [False] * 9]
    assert await stored_jobs(queue) == 10


@pytest.mark.timeout(30)
async def test_a_call_unanswered_within_the_timeout_fails_then_and_is_not_sent_again(
    throwaway_redis: ThrowawayRedisFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a socket timeout (the HTTP functions), a call Redis does not answer in time fails with
    TimeoutError then, not when Redis answers again, and is not sent again; the next call, once
    Redis answers, goes on a new connection."""
    server = throwaway_redis()
    client = create_redis(server.url, cluster=False, timeout=TIMEOUT)
    admin = create_redis(server.url, cluster=False)
    waiter = create_redis(server.url, cluster=False)  # its write is held until the pause ends
    queue = Queue(client, queue_settings(server.url))
    try:
        await enqueue(queue, "warm-up")  # connected, script loaded
        sends = _watch_batches(queue, monkeypatch)
        await admin.client_pause(3000, all=True)
        began = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await enqueue(queue, "paused")
        failed_after = time.monotonic() - began
        assert TIMEOUT <= failed_after < TIMEOUT + 1.0, failed_after  # well before the pause's end
        await waiter.set("pause-ended", "1")
        job = await enqueue(queue, "after")
        assert job.data["value"] == "after"
        assert sizes(sends) == [1, 1]  # the paused call once, then the next one
    finally:
        await admin.client_unpause()
        for c in (client, admin, waiter):
            await c.aclose()


@pytest.mark.timeout(30)
async def test_a_call_waiting_for_a_connection_fails_at_its_own_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Connecting may take longer than a call may wait (redis-py bounds the connect and each step
    of its handshake, not their sum): the call fails at its deadline all the same."""
    client = create_redis(TEST_REDIS_URL, cluster=False, timeout=TIMEOUT)
    queue = Queue(client, queue_settings(TEST_REDIS_URL))
    never = asyncio.Event()

    async def connect_that_hangs(*_: Any, **__: Any) -> Any:
        await never.wait()

    monkeypatch.setattr(client.connection_pool, "get_connection", connect_that_hangs)
    sends = _watch_batches(queue, monkeypatch)
    began = time.monotonic()
    try:
        with pytest.raises(RedisTimeoutError):
            await asyncio.wait_for(enqueue(queue, "waiting"), 10)
        assert TIMEOUT <= time.monotonic() - began < TIMEOUT + 1.0
        assert sends == []
    finally:
        await client.aclose()


async def test_closing_the_client_closes_the_batchers_connection_and_it_reconnects_after(
    queue: Queue,
) -> None:
    await enqueue(queue, 0)
    name = "batcher-close-test"
    await queue.redis.client_setname(name)  # a pooled connection, not the batcher's: for contrast
    await asyncio.wait_for(queue.redis.aclose(), 5)  # redis-py waits for the batcher's connection too
    job = await enqueue(queue, 1)
    assert job.data["value"] == 1
    assert await stored_jobs(queue) == 2


def test_a_batcher_used_on_a_new_event_loop_starts_over_on_a_new_connection() -> None:
    client = create_redis(TEST_REDIS_URL, cluster=False)
    queue = Queue(client, queue_settings(TEST_REDIS_URL))
    values = []
    for value in ("first loop", "second loop"):
        # Only the batcher crosses loops here: each loop opens its own connection through it.
        values.append(asyncio.run(enqueue(queue, value)).data["value"])
    assert values == ["first loop", "second loop"]


class ReplySplitter:
    """A TCP proxy in front of Redis that passes replies on one byte at a time, so the client reads
    each batch's replies in many pieces, cut anywhere."""

    def __init__(self, redis_url: str) -> None:
        self._target = redis.asyncio.connection.parse_url(redis_url)
        self._listener: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self.pieces = 0

    async def start(self) -> str:
        self._listener = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._listener.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/{self._target.get('db', 0)}"

    async def close(self) -> None:
        for task in self._pipes:
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(self._target["host"], self._target["port"])
        pipes = {
            asyncio.create_task(self._pipe(client_r, server_w, split=False)),
            asyncio.create_task(self._pipe(server_r, client_w, split=True)),
        }
        self._pipes |= pipes
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for task in pipes:
            task.cancel()
        for writer in (client_w, server_w):
            writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, split: bool) -> None:
        while data := await reader.read(65536):
            for piece in [data[i : i + 1] for i in range(len(data))] if split else [data]:
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0)  # a turn of the loop: the client reads this piece alone
                self.pieces += 1


@pytest.mark.timeout(60)
async def test_replies_read_in_pieces_still_reach_their_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replies cut anywhere, NOSCRIPT refusals included: every call gets its own reply, and the
    refused ones go again (the first as EVAL) however the refusals were split across reads."""
    proxy = ReplySplitter(TEST_REDIS_URL)
    client = create_redis(await proxy.start(), cluster=False)
    queue = Queue(client, queue_settings(TEST_REDIS_URL))
    split_sent = _watch_batches(queue, monkeypatch)
    try:
        await client.script_flush()
        jobs = await asyncio.wait_for(asyncio.gather(*(enqueue(queue, i) for i in range(10))), 30)
        assert [job.data["value"] for job in jobs] == list(range(10))
        assert split_sent == [[False] * 10, [True] + [False] * 9]
        more = await asyncio.wait_for(asyncio.gather(*(enqueue(queue, i) for i in range(10, 20))), 30)
        assert [job.data["value"] for job in more] == list(range(10, 20))
        assert proxy.pieces > 20 * 50  # replies did arrive a byte at a time
    finally:
        await client.aclose()
        await proxy.close()
