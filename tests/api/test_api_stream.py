"""The SSE gateway against a live uvicorn server, read with a real SSE client (httpx-sse)."""

from __future__ import annotations

import asyncio
import json

import httpx
import redis

from explorer_jobs.api.sse.hub import POOL_NAME, READER_NAME
from explorer_jobs.queue import Queue
from explorer_jobs.settings import Settings

from .conftest import StartServer, api_settings
from .support import auth, open_stream

STREAM = "/api/jobs/notifications/stream"


async def _enqueue(queue: Queue, user: str = "alice") -> str:
    return (await queue.enqueue("schema_training", {"connectionId": "c1"}, user_id=user)).job.job_id


async def test_events_arrive_in_order(live_server: StartServer, settings: Settings, queue: Queue) -> None:
    server = live_server(settings)
    async with (
        httpx.AsyncClient(base_url=server.url) as http,
        open_stream(http, STREAM, headers=auth()) as events,
    ):
        assert events.opening is not None and events.opening.retry == settings.SSE_RETRY_MS
        first, second = await _enqueue(queue), await _enqueue(queue)
        await queue.cancel(first)
        got = await events.take(3)
    assert [(e.event, json.loads(e.data)["jobId"]) for e in got] == [
        ("job_queued", first),
        ("job_queued", second),
        ("job_cancelled", first),
    ]
    data = json.loads(got[2].data)
    assert (
        data["type"] == "job_cancelled"
        and data["status"] == "cancelled"
        and data["jobType"] == "schema_training"
    )
    assert {"progress", "message", "timestamp"} <= set(data)
    ids = [tuple(map(int, e.id.split("-"))) for e in got]
    assert ids == sorted(ids) and len(set(ids)) == 3


async def test_replay_after_a_dropped_connection(
    live_server: StartServer, settings: Settings, queue: Queue
) -> None:
    server = live_server(settings)
    async with httpx.AsyncClient(base_url=server.url) as http:
        async with open_stream(http, STREAM, headers=auth()) as events:
            await _enqueue(queue)
            seen = await events.take(1)
        missed = [await _enqueue(queue) for _ in range(3)]  # while no client is connected
        for how in ("header", "query"):
            headers, params = auth(), {}
            if how == "header":
                headers["Last-Event-ID"] = seen[-1].id
            else:
                params["lastEventId"] = seen[-1].id
            async with open_stream(http, STREAM, headers=headers, params=params) as events:
                replayed = await events.take(3)
                assert [json.loads(e.data)["jobId"] for e in replayed] == missed, how
                live = await _enqueue(queue)
                following = await events.next()
                assert json.loads(following.data)["jobId"] == live, "no duplicate, then live"
            missed = [*missed[1:], live]
            seen = replayed[:1]


async def test_reconnect_resumes_from_the_opening_id(
    live_server: StartServer, settings: Settings, queue: Queue
) -> None:
    # A client that got no event yet still resumes from where it connected (the opening `id:`).
    server = live_server(settings)
    async with httpx.AsyncClient(base_url=server.url) as http:
        async with open_stream(http, STREAM, headers=auth()) as events:
            assert events.opening is not None
            resume_from = events.opening.id
        missed = await _enqueue(queue)
        async with open_stream(http, STREAM, headers={**auth(), "Last-Event-ID": resume_from}) as events:
            assert json.loads((await events.next()).data)["jobId"] == missed


async def test_ticket_opens_one_stream_only(
    live_server: StartServer, settings: Settings, queue: Queue
) -> None:
    server = live_server(settings)
    async with httpx.AsyncClient(base_url=server.url) as http:
        ticket = (await http.post("/api/jobs/notifications/ticket", headers=auth())).json()["ticket"]
        async with open_stream(http, STREAM, params={"ticket": ticket}) as events:
            job = await _enqueue(queue)
            assert json.loads((await events.next()).data)["jobId"] == job
        reused = await http.get(STREAM, params={"ticket": ticket})
        assert reused.status_code == 401
        assert (await http.get(STREAM, params={"ticket": "made-up"})).status_code == 401
        assert (await http.get(STREAM)).status_code == 401


async def test_heartbeat_comment(live_server: StartServer, queue: Queue) -> None:
    server = live_server(api_settings(SSE_HEARTBEAT_SECONDS=0.2))
    async with (
        httpx.AsyncClient(base_url=server.url) as http,
        http.stream("GET", STREAM, headers=auth()) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        lines = response.aiter_lines()
        async with asyncio.timeout(5):
            first = await anext(lines)
            assert first.startswith("retry: ")
            comments = 0
            async for line in lines:
                if line.startswith(":"):
                    comments += 1
                    if comments == 2:
                        break


async def test_stream_ends_on_server_shutdown(live_server: StartServer, settings: Settings) -> None:
    server = live_server(settings)
    async with (
        httpx.AsyncClient(base_url=server.url) as http,
        open_stream(http, STREAM, headers=auth()) as events,
    ):
        stopping = asyncio.get_running_loop().run_in_executor(None, server.stop)
        assert await events.ended(within=5)
        assert await asyncio.wait_for(stopping, 10) < 5.0


async def test_stream_lifetime_is_capped(live_server: StartServer) -> None:
    server = live_server(api_settings(SSE_STREAM_MAX_MINUTES=0.01))  # 0.6 s
    async with (
        httpx.AsyncClient(base_url=server.url) as http,
        open_stream(http, STREAM, headers=auth()) as events,
    ):
        assert await events.ended(within=5)


async def test_redis_connections_stay_bounded(
    live_server: StartServer, settings: Settings, queue: Queue, clean_redis: redis.Redis
) -> None:
    server = live_server(settings)
    users = [f"user{i}" for i in range(30)]
    async with httpx.AsyncClient(base_url=server.url, limits=httpx.Limits(max_connections=100)) as http:
        async with asyncio.TaskGroup() as group:
            streams = [open_stream(http, STREAM, headers=auth(u)) for u in users]
            readers = [group.create_task(s.__aenter__()) for s in streams]
        try:
            await _enqueue(queue, users[-1])
            assert json.loads((await readers[-1].result().next()).data)["type"] == "job_queued"
            # This suite's database only: another process on the machine may run a gateway too.
            db = str(clean_redis.connection_pool.connection_kwargs.get("db", 0))
            names = [c.get("name", "") for c in clean_redis.client_list() if c.get("db") == db]
            gateway = [n for n in names if n in (READER_NAME, POOL_NAME)]
            assert 1 <= len(gateway) <= 4, names
        finally:
            for stream in streams:
                await stream.__aexit__(None, None, None)


async def test_long_poll(live_server: StartServer, queue: Queue) -> None:
    server = live_server(api_settings(SSE_POLL_WAIT_SECONDS=0.5))
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        empty = await http.get(STREAM, params={"mode": "poll"}, headers=auth())
        assert empty.status_code == 200 and "event:" not in empty.text
        resume = [line[4:] for line in empty.text.splitlines() if line.startswith("id: ")][-1]
        job = await _enqueue(queue)
        answered = await http.get(STREAM, params={"mode": "poll", "lastEventId": resume}, headers=auth())
        assert "event: job_queued" in answered.text and job in answered.text
        # An event arriving during the wait answers at once, not at the end of the wait.
        last = [line[4:] for line in answered.text.splitlines() if line.startswith("id: ")][-1]
        waiting = asyncio.create_task(
            http.get(STREAM, params={"mode": "poll"}, headers={**auth(), "Last-Event-ID": last})
        )
        await asyncio.sleep(0.1)  # let the poll reach its wait; the answer is awaited, bounded, below
        second = await _enqueue(queue)
        response = await asyncio.wait_for(waiting, 5)
        assert second in response.text


def _kill_gateway_connections(client: redis.Redis, names: tuple[str, ...]) -> int:
    """CLIENT KILL, by id, the gateway's connections of these names on this suite's database."""
    db = str(client.connection_pool.connection_kwargs.get("db", 0))
    ids = [c["id"] for c in client.client_list() if c.get("name") in names and c.get("db") == db]
    return sum(int(client.client_kill_filter(_id=i)) for i in ids)


async def test_reader_reconnects_after_its_connection_drops_and_nothing_is_lost(
    live_server: StartServer, settings: Settings, queue: Queue, clean_redis: redis.Redis
) -> None:
    server = live_server(settings)
    async with (
        httpx.AsyncClient(base_url=server.url) as http,
        open_stream(http, STREAM, headers=auth()) as events,
    ):
        first = await _enqueue(queue)
        assert json.loads((await events.next()).data)["jobId"] == first  # the reader is reading
        got = []
        for _ in range(3):
            # Its blocked XREAD fails; the event appended while it reconnects is read from its
            # cursor once it is back (which the event's arrival shows).
            assert _kill_gateway_connections(clean_redis, (READER_NAME,)) == 1
            job = await _enqueue(queue)
            got.append(await events.next())
            assert json.loads(got[-1].data)["jobId"] == job
        last = await _enqueue(queue)
        assert json.loads((await events.next()).data)["jobId"] == last, "no event twice"
        # The same client, cut and back with its Last-Event-ID while the gateway reconnects too.
        resume_from = got[-1].id
        missed = [last]
    missed.append(await _enqueue(queue))
    _kill_gateway_connections(clean_redis, (READER_NAME, POOL_NAME))
    async with (
        httpx.AsyncClient(base_url=server.url) as http,
        open_stream(http, STREAM, headers={**auth(), "Last-Event-ID": resume_from}) as events,
    ):
        assert [json.loads(e.data)["jobId"] for e in await events.take(2)] == missed
        live = await _enqueue(queue)
        assert json.loads((await events.next()).data)["jobId"] == live
