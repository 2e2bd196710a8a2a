"""Redis faults under the real processes: `explorer-jobs api` (every function and the SSE gateway)
and `explorer-jobs worker` processes training a SQLite database, on a throwaway redis-server.

1. Redis down at start: the API answers 503 at once (never 500, never a hang) on /healthz and on
   every route that needs Redis; a worker retries with growing delays and says so; once Redis is
   up it runs every job queued after, each once.
2. Connections killed (`CLIENT KILL TYPE normal`, again and again) while jobs are queued through
   the API and run: every job whose enqueue answered 202 completes exactly once, none stays
   active, the API answers 202/200 or 503 (never 500), and an SSE client that follows the stream
   through it (the gateway's reader is killed too) gets every event once, in order.
3. `CLIENT PAUSE` (ALL, then WRITE) shorter than a lease: the API answers 503 within its Redis
   timeout instead of waiting out the pause (reads that a WRITE pause allows still answer 200);
   workers stall and resume; every job runs once.

Short form by default; CHAOS_FULL=1 (or CHAOS_CLIENT_KILLS, CHAOS_PAUSES) for a longer one.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from explorer_jobs.models import JobStatus
from explorer_jobs.processors import PROCESSORS
from explorer_jobs.queue import Queue
from explorer_jobs.redis_client import create_redis
from explorer_jobs.worker import Worker
from tests.api.support import auth
from tests.conftest import queue_settings
from tests.support.events import read_events, wait_for_events
from tests.support.fixtures import ThrowawayRedisFactory
from tests.support.redis_servers import RedisServer
from tests.support.workers import running

from .stack import STREAM, USER, EventFollower, Stack, timed
from .support import EVENTS_MAXLEN, FULL, WAIT, WorkerProc, event_ms

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

# A 503 for a Redis that is down or stalled comes within this (seconds): the API's own bounds
# (HEALTH_TIMEOUT_SECONDS, API_REDIS_TIMEOUT_SECONDS below) plus a margin for a busy machine.
FAST = 2.0
CLIENT_KILLS = int(os.environ.get("CHAOS_CLIENT_KILLS") or (100 if FULL else 20))
PAUSES = int(os.environ.get("CHAOS_PAUSES") or (6 if FULL else 1))  # each: one ALL and one WRITE
PAUSE_MS = 3000
# The API's Redis timeout in the pause test: a request caught in a pause answers 503 after this.
API_TIMEOUT = 0.5
PRODUCERS = 4
# Between two enqueues of one producer: the trainings (a few ms each, saved in SQLite) keep up.
PRODUCER_PACE = 0.05
# Trainings of one connection race for its next cache version: spread them.
CONNECTIONS = 16
FINISHED = {JobStatus.COMPLETED.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value}
TICKET = "/api/jobs/notifications/ticket"
_RETRY_DELAY = re.compile(r"redis unavailable \(.*\); retrying in ([0-9.]+) s")


def _queue_name() -> str:
    return f"f{uuid.uuid4().hex[:10]}"


@asynccontextmanager
async def _queue_on(server: RedisServer, queue_name: str) -> AsyncIterator[Queue]:
    """The test's own view of the queue (events, statuses, sets), on its own client."""
    client = create_redis(server.url, cluster=False)
    try:
        yield Queue(client, queue_settings(server.url, QUEUE_NAME=queue_name, EVENTS_MAXLEN=EVENTS_MAXLEN))
    finally:
        await client.aclose()


def _train(cid: str) -> str:
    return f"/api/connections/{cid}/train-schema"


def _all_finished(job_ids: Iterable[str]) -> Callable[[list[dict[str, Any]]], bool]:
    wanted = set(job_ids)

    def done(events: list[dict[str, Any]]) -> bool:
        return wanted <= {e["jobId"] for e in events if e["status"] in FINISHED}

    return done


def _retry_delays(worker: WorkerProc) -> list[float]:
    return [float(d) for d in _RETRY_DELAY.findall(worker.log_text())]


def _wait_for_retries(worker: WorkerProc, n: int, timeout: float = WAIT) -> list[float]:
    """The delays of the worker's first `n` "redis unavailable" log lines (a log file has no event
    to await: polled, bounded)."""
    deadline = time.monotonic() + timeout
    while len(delays := _retry_delays(worker)) < n:
        assert worker.proc.poll() is None, f"the worker exited:\n{worker.log_text()}"
        assert time.monotonic() < deadline, f"fewer than {n} retries logged:\n{worker.log_text()}"
        time.sleep(0.05)
    return delays


def _per_job(events: list[dict[str, Any]], event_type: str) -> collections.Counter[str]:
    return collections.Counter(e["jobId"] for e in events if e["type"] == event_type)


async def _settled(queue: Queue, job_ids: list[str]) -> list[dict[str, Any]]:
    """Wait until every job has finished; then nothing is left queued or active. The events."""
    events = await wait_for_events(queue, USER, _all_finished(job_ids), timeout=WAIT)
    assert await queue.redis.zcard(queue.keys.active) == 0, "a job stayed active"
    assert await queue.redis.zcard(queue.keys.queued) == 0, "a job stayed queued"
    return events


# ---------------------------------------------------------------------------------- 1. down at start


@pytest.mark.timeout(90)
async def test_redis_down_at_start_503_at_once_then_the_worker_connects_and_runs_everything(
    throwaway_redis: ThrowawayRedisFactory, tmp_path: Path
) -> None:
    server = throwaway_redis()
    server.stop()  # its port and data dir are kept: it starts again on them below
    queue_name = _queue_name()
    with Stack.running(server.url, queue_name, tmp_path) as stack:
        worker = stack.workers.start(concurrency=2)
        async with httpx.AsyncClient(base_url=stack.api.url, timeout=WAIT) as http:
            [cid] = await stack.save_connections(http, 1)  # the store only: no Redis needed
            answers = []
            for _ in range(5):
                answers += [
                    ("healthz", await timed(http, "GET", "/healthz")),
                    ("enqueue", await timed(http, "POST", _train(cid), headers=auth(USER))),
                    ("list", await timed(http, "GET", "/api/jobs", headers=auth(USER))),
                    ("ticket", await timed(http, "POST", TICKET, headers=auth(USER))),
                    ("stream", await timed(http, "GET", STREAM, headers=auth(USER))),
                ]
            assert {a.status for _, a in answers} == {503}, answers
            slowest = max(answers, key=lambda a: a[1].seconds)
            assert slowest[1].seconds < FAST, slowest

            # The worker lives on, retrying with growing delays, and says so.
            delays = _wait_for_retries(worker, 4)
            assert delays == sorted(delays) and delays[-1] > delays[0], delays

            await asyncio.to_thread(server.start)
            up_at = time.time()  # wall clock: compared with the events' ids (Redis's clock)
            assert (await http.get("/healthz")).status_code == 200
            jobs = []
            for _ in range(20):
                response = await http.post(_train(cid), headers=auth(USER))
                assert response.status_code == 202, response.text
                jobs.append(response.json()["jobId"])
            async with _queue_on(server, queue_name) as queue:
                events = await _settled(queue, jobs)
                statuses = {(await queue.get(j)).status for j in jobs}
        back_after = min(event_ms(e) for e in events if e["type"] == "job_started") / 1000 - up_at
        assert statuses == {JobStatus.COMPLETED}, statuses
        assert _per_job(events, "job_started") == {j: 1 for j in jobs}
        assert _per_job(events, "job_completed") == {j: 1 for j in jobs}
        assert stack.trainings_saved() == {j: 1 for j in jobs}
        assert "redis reachable again" in worker.log_text(), worker.log_text()
        assert "Traceback" not in stack.api.log_text(), stack.api.log_text()
    print(
        f"\nredis down at start: {len(answers)} requests answered 503, slowest "
        f"{slowest[1].seconds * 1000:.0f} ms ({slowest[0]}); worker retry delays {delays} s; "
        f"{len(jobs)} jobs queued after Redis came up, all completed once "
        f"(the first started {back_after:.1f} s after Redis came up)"
    )


# ---------------------------------------------------------------------------------- load under faults


@dataclass
class Producers:
    """HTTP clients queueing trainings through the API (and reading each job back) until stopped."""

    http: httpx.AsyncClient
    connections: list[str]
    acked: list[str] = field(default_factory=list)  # jobs whose enqueue answered 202
    enqueues: collections.Counter[int] = field(default_factory=collections.Counter)  # status: count
    reads: collections.Counter[int] = field(default_factory=collections.Counter)
    slowest_503: float = 0.0
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self, n: int = PRODUCERS) -> None:
        self.tasks = [asyncio.create_task(self._produce(i)) for i in range(n)]

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)

    async def _produce(self, seed: int) -> None:
        rng = random.Random(seed)
        while not self.stop.is_set():
            cid = rng.choice(self.connections)
            answer = await timed(self.http, "POST", _train(cid), headers=auth(USER))
            self.enqueues[answer.status] += 1
            if answer.status == 503:
                self.slowest_503 = max(self.slowest_503, answer.seconds)
            if answer.status == 202:
                self.acked.append(answer.body["jobId"])
                read = await timed(self.http, "GET", f"/api/jobs/{self.acked[-1]}", headers=auth(USER))
                self.reads[read.status] += 1
            # The load's pace (a schedule, not a wait for an event): the trainings keep up with it.
            await asyncio.sleep(PRODUCER_PACE)


@dataclass
class Outcome:
    written: int  # jobs in the user's index: the acknowledged ones and `extra`
    extra: int  # jobs written though their enqueue answered 503 (the reply was lost, or came late)
    stalls: int  # claims left to the lease (their reply lost with a dropped connection)
    reran: int  # trainings run again after a stall
    failed_attempts: collections.Counter[str]  # attempts that failed and were retried, by error
    events: int


async def _check_everything_ran_once(
    stack: Stack, queue: Queue, producers: Producers, follower: EventFollower
) -> Outcome:
    """The common end of the load tests: every job written (acknowledged or not) finishes, and
    completes exactly once; the SSE client saw every event once, in order."""
    acked = producers.acked
    assert len(set(acked)) == len(acked), "one jobId answered twice"
    written = [str(j) for j in await queue.redis.zrange(queue.keys.user_jobs(USER), 0, -1)]
    assert set(acked) <= set(written), "an acknowledged job is missing"
    extra = len(written) - len(acked)
    assert extra <= producers.enqueues[503], "only a request that answered 503 may add an unknown job"
    events = await _settled(queue, written)
    statuses = collections.Counter([(await queue.get(j)).status for j in written])
    assert statuses == {JobStatus.COMPLETED: len(written)}, statuses
    once = {j: 1 for j in written}
    # Queued once by its enqueue (a queued event without a message: promotions and requeues say
    # why), and completed once.
    enqueued = collections.Counter(
        e["jobId"] for e in events if e["type"] == "job_queued" and not e["message"]
    )
    assert enqueued == once, "a job was enqueued twice"
    assert _per_job(events, "job_completed") == once, "a job completed twice"
    # Every start but the first follows a job_retrying: a failed attempt, or a claim whose reply a
    # dropped connection lost, left to its lease (a stall). A start without one is a duplicate.
    started, retried = _per_job(events, "job_started"), _per_job(events, "job_retrying")
    assert {j: started[j] - retried[j] for j in written} == once, "a job was started twice"
    retries = [e for e in events if e["type"] == "job_retrying"]
    stalled = collections.Counter(e["jobId"] for e in retries if "worker lost" in e["message"])
    # One training saved per job; a second only where a lease ran out under a running training
    # (the lease rules: its owner's late outcome is refused, but its work was done).
    saved = stack.trainings_saved()
    ran = {j: saved.get(j, 0) for j in written}
    assert all(ran[j] == 1 or 1 < ran[j] <= 1 + stalled[j] for j in written), "a training ran twice"

    # The SSE client got the whole stream once, in order, across the faults and its reconnects.
    await follower.wait_for(events[-1]["_id"], timeout=WAIT)
    assert follower.seen == [e["_id"] for e in await read_events(queue, USER)]
    failed = collections.Counter(str(e.get("error")) for e in retries if "worker lost" not in e["message"])
    reran = sum(ran.values()) - len(written)
    return Outcome(len(written), extra, sum(stalled.values()), reran, failed, len(events))


@pytest.mark.timeout(120 + CLIENT_KILLS)
async def test_connections_killed_every_acknowledged_job_completes_once(
    throwaway_redis: ThrowawayRedisFactory, tmp_path: Path
) -> None:
    server = throwaway_redis()
    queue_name = _queue_name()
    # A short lease: a claim whose reply a killed connection lost is recovered within seconds.
    with Stack.running(server.url, queue_name, tmp_path, LEASE_SECONDS="2") as stack:
        for _ in range(2):
            stack.workers.start(concurrency=4)
        admin = Redis(host=server.host, port=server.port)  # CLIENT KILL skips its caller
        async with (
            httpx.AsyncClient(base_url=stack.api.url, timeout=WAIT) as http,
            _queue_on(server, queue_name) as queue,
        ):
            cids = await stack.save_connections(http, CONNECTIONS)
            follower = EventFollower(http, reconnect_every=40)
            following = asyncio.create_task(follower.run())
            producers = Producers(http, cids)
            producers.start()
            rng = random.Random(CLIENT_KILLS)
            killed = 0
            try:
                for _ in range(CLIENT_KILLS):
                    await asyncio.sleep(rng.uniform(0.1, 0.3))  # the chaos schedule
                    killed += int(await admin.client_kill_filter(_type="normal"))
                await producers.finish()
                outcome = await _check_everything_ran_once(stack, queue, producers, follower)
            finally:
                following.cancel()
                await admin.aclose()
        assert set(producers.enqueues) <= {202, 503}, producers.enqueues
        assert set(producers.reads) <= {200, 503}, producers.reads
        assert producers.enqueues[202] > 0
        assert "Traceback" not in stack.api.log_text(), stack.api.log_text()
    print(
        f"\nconnections killed: {CLIENT_KILLS} CLIENT KILL TYPE normal ({killed} connections); "
        f"enqueues {dict(producers.enqueues)}, reads {dict(producers.reads)}, slowest 503 "
        f"{producers.slowest_503 * 1000:.0f} ms; {outcome.written} jobs ({len(producers.acked)} "
        f"acknowledged, {outcome.extra} written by a 503'd request) all completed once; "
        f"{outcome.stalls} claims left to the lease ({outcome.reran} trainings run again); "
        f"retried attempts {dict(outcome.failed_attempts)}; "
        f"SSE: {outcome.events} events once in order over {follower.reconnects} reconnects "
        f"({follower.refused} refused with 503)"
    )


# ---------------------------------------------------------------------------------- 3. CLIENT PAUSE


@pytest.mark.timeout(90 + PAUSES * 20)
async def test_client_pause_answers_503_within_the_timeout_and_workers_resume(
    throwaway_redis: ThrowawayRedisFactory, tmp_path: Path
) -> None:
    server = throwaway_redis()
    queue_name = _queue_name()
    bounds = {"API_REDIS_TIMEOUT_SECONDS": str(API_TIMEOUT), "HEALTH_TIMEOUT_SECONDS": str(API_TIMEOUT)}
    # Leases outlast the pauses: no job may be started twice.
    with Stack.running(server.url, queue_name, tmp_path, LEASE_SECONDS="10", **bounds) as stack:
        for _ in range(2):
            stack.workers.start(concurrency=4)
        admin = Redis(host=server.host, port=server.port)
        waiter = Redis(host=server.host, port=server.port)  # blocks until a pause ends
        async with (
            httpx.AsyncClient(base_url=stack.api.url, timeout=WAIT) as http,
            _queue_on(server, queue_name) as queue,
        ):
            cids = await stack.save_connections(http, CONNECTIONS)
            follower = EventFollower(http, reconnect_every=40)
            following = asyncio.create_task(follower.run())
            producers = Producers(http, cids)
            producers.start()
            probes: dict[str, list[tuple[str, Any]]] = {"ALL": [], "WRITE": []}
            held: list[float] = []
            try:
                for _ in range(PAUSES):
                    for mode in ("ALL", "WRITE"):
                        await asyncio.sleep(0.5)  # load between the pauses: the chaos schedule
                        a_job = producers.acked[-1]
                        began = time.monotonic()
                        await admin.client_pause(PAUSE_MS, all=mode == "ALL")
                        probes[mode] += await _probe(http, cids[0], a_job)
                        # A write (with no timeout) is held until the pause ends: the end, awaited.
                        await waiter.set(f"{queue_name}:probe", "1")
                        held.append(time.monotonic() - began)
                await producers.finish()
                outcome = await _check_everything_ran_once(stack, queue, producers, follower)
            finally:
                following.cancel()
                await admin.aclose()
                await waiter.aclose()
        assert outcome.stalls == 0, "a lease ran out under a pause shorter than the lease"
        assert set(producers.enqueues) <= {202, 503}, producers.enqueues
        assert set(producers.reads) <= {200, 503}, producers.reads
        assert min(held) >= PAUSE_MS / 1000 * 0.9, held  # the pauses did hold Redis
        for mode, answers in probes.items():
            for name, answer in answers:
                assert answer.seconds < FAST, (mode, name, answer)
        statuses = {(mode, name, a.status) for mode, answers in probes.items() for name, a in answers}
        # A WRITE pause lets reads through: Redis answers PING and the job reads back.
        assert statuses == {
            ("ALL", "healthz", 503),
            ("ALL", "enqueue", 503),
            ("ALL", "job", 503),
            ("WRITE", "healthz", 200),
            ("WRITE", "enqueue", 503),
            ("WRITE", "job", 200),
        }, statuses
        assert "Traceback" not in stack.api.log_text(), stack.api.log_text()
    slowest = max(a.seconds for answers in probes.values() for _, a in answers)
    print(
        f"\nclient pause: {PAUSES} x (ALL, WRITE) of {PAUSE_MS} ms; during them 503 within "
        f"{slowest * 1000:.0f} ms (API_REDIS_TIMEOUT_SECONDS={API_TIMEOUT}); enqueues "
        f"{dict(producers.enqueues)}, slowest 503 {producers.slowest_503 * 1000:.0f} ms; "
        f"{outcome.written} jobs ({len(producers.acked)} acknowledged, {outcome.extra} written by a "
        f"503'd request) all completed once, 0 stalls; retried attempts "
        f"{dict(outcome.failed_attempts)}; SSE: {outcome.events} events once in order"
    )


async def _probe(http: httpx.AsyncClient, cid: str, job_id: str) -> list[tuple[str, Any]]:
    """What the API answers while Redis is paused (each timed)."""
    return [
        ("healthz", await timed(http, "GET", "/healthz")),
        ("enqueue", await timed(http, "POST", _train(cid), headers=auth(USER))),
        ("job", await timed(http, "GET", f"/api/jobs/{job_id}", headers=auth(USER))),
    ]


# ---------------------------------------------------------------------------------- a lost reply


class ReplyDropper:
    """A TCP proxy in front of Redis that, once armed, closes the client's connection instead of
    passing on the next reply: the command ran, its answer never came, and the client (redis-py's
    retry) sends it again on a new connection. `drop_reply_to` aims at one command instead."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.armed = False
        self.dropped = 0
        # Aimed: the reply to the command whose request holds `_match`, after `_skip` such.
        self._match: bytes | None = None
        self._skip = 0
        self._listener: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._listener = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._listener.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    def drop_reply_to(self, match: bytes, skip: int = 0) -> None:
        self._match, self._skip = match, skip

    async def close(self) -> None:
        for task in self._pipes:
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(self.server.host, self.server.port)
        aimed: list[bool] = [False]  # this connection's next reply is the aimed one
        up = asyncio.create_task(self._pipe(client_r, server_w, aimed, replies=False))
        down = asyncio.create_task(self._pipe(server_r, client_w, aimed, replies=True))
        self._pipes |= {up, down}
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        for task in (up, down):
            task.cancel()
        for writer in (client_w, server_w):
            writer.close()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, aimed: list[bool], replies: bool
    ) -> None:
        while data := await reader.read(65536):
            if not replies and self._match is not None and self._match in data:
                if self._skip == 0:
                    self._match, aimed[0] = None, True
                self._skip -= 1
            if replies and (self.armed or aimed[0]):
                self.armed = aimed[0] = False
                self.dropped += 1
                return  # the reply is dropped and the connection closed
            writer.write(data)
            await writer.drain()


async def test_an_enqueue_whose_reply_was_lost_is_retried_and_written_once(
    throwaway_redis: ThrowawayRedisFactory,
) -> None:
    server = throwaway_redis()
    proxy = ReplyDropper(server)
    client = create_redis(await proxy.start(), cluster=False)  # redis-py retries a dropped call
    settings = queue_settings(server.url, EVENTS_MAXLEN=EVENTS_MAXLEN)
    try:
        queue = Queue(client, settings)
        # The connection is up and the script loaded: the next reply is the enqueue's result.
        await queue.enqueue("test_echo", {"value": 0}, user_id="warm-up")
        proxy.armed = True
        result = await queue.enqueue("test_echo", {"value": 1}, user_id=USER)
        assert proxy.dropped == 1, "the first reply was dropped"
        assert result.created and result.job.status is JobStatus.QUEUED
        job_id = result.job.job_id
        assert await client.zrange(queue.keys.user_jobs(USER), 0, -1) == [job_id]
        assert job_id in await client.zrange(queue.keys.queued, 0, -1)
        assert [e["type"] for e in await read_events(queue, USER)] == ["job_queued"]
        [counts] = await queue.counts(USER)
        assert counts.counts["queued"] == 1
    finally:
        await client.aclose()
        await proxy.close()


async def test_a_claim_whose_reply_was_lost_is_retried_and_each_job_starts_once(
    throwaway_redis: ThrowawayRedisFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Sent again, the claim gets its first reply: the jobs it claimed run now (not after their
    lease, as stalls), and the outcomes it settled are not refused on the second run."""
    server = throwaway_redis()
    proxy = ReplyDropper(server)
    client = create_redis(await proxy.start(), cluster=False)  # redis-py retries a dropped call
    settings = queue_settings(server.url, EVENTS_MAXLEN=EVENTS_MAXLEN, LEASE_SECONDS=2.0)
    try:
        queue = Queue(client, settings)
        ids = [(await queue.enqueue("test_echo", {"value": i}, user_id=USER)).job.job_id for i in range(8)]
        await queue.claim("warm-up", 0)  # the script is loaded: the next claim runs at once
        # The worker's second claim: it settles a job of its first and claims more.
        proxy.drop_reply_to(queue._scripts["claim"].sha.encode(), skip=1)
        worker = Worker(queue, processors=PROCESSORS, concurrency=2)
        async with running(worker):
            events = await _settled(queue, ids)
        assert proxy.dropped == 1, "a claim's reply was dropped"
        assert _per_job(events, "job_started") == collections.Counter(ids), "each job started once"
        assert _per_job(events, "job_completed") == collections.Counter(ids)
        assert not [e for e in events if e["type"] == "job_retrying"], "no stall, no retry"
        assert "outcome refused" not in caplog.text
    finally:
        await client.aclose()
        await proxy.close()
