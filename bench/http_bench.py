"""HTTP bench: the enqueue function against a bare FastAPI endpoint, and the SSE gateway with many clients.

    .venv/bin/python bench/http_bench.py [--seconds 6] [--concurrency 16] [--sse-clients 1000]

Everything runs on loopback, bounded in time, against a throwaway `redis-server` this script starts
(never the shared one), so nothing else on the machine is touched. One run prints:

1. enqueue (`POST /api/connections/{id}/train-schema`: JWT, then one enqueue script that checks the
   connection's cached owner, counts the rate limit and queues the job) vs the same path on a bare
   FastAPI app and on a bare app that only calls `Queue.enqueue`, each under one uvicorn worker, with
   the same raw keep-alive HTTP/1.1 load client: requests/s and p50/p99 latency, and the ratio.
2. one SSE gateway process with N connected clients: the Redis connections it holds (CLIENT LIST),
   the delay from a job's transition (the event's Redis timestamp) to each client's receipt
   (p50/p99, a burst and a steady rate), its RSS per client, and how long SIGTERM takes to stop it
   with every stream open.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
import psutil
import redis

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-" + "x" * 51
START_TIMEOUT = 20.0
TRAIN_BODY = b'{"priority": 5}'


# ---------------------------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_listening(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited at start")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen within {START_TIMEOUT} s")


@contextlib.contextmanager
def started(
    args: list[str], port: int, what: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.DEVNULL)
    try:
        wait_listening(port, process, what)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def uvicorn(app_dir: Path, port: int, app: str = "app:app") -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(app_dir),
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        "--timeout-graceful-shutdown",
        "5",
    ]


def token(user: str) -> str:
    return jwt.encode({"sub": user, "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# ---------------------------------------------------------------------------------------------- enqueue


async def http_worker(
    port: int, request: bytes, deadline: float, latencies: list[float], statuses: dict[int, int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - began)
            status = int(head[9:12])
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def load(
    port: int, requests: list[bytes], seconds: float, server: psutil.Process | None = None
) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds
    began = time.perf_counter()
    cpu_before = sum(server.cpu_times()[:2]) if server else 0.0
    await asyncio.gather(*(http_worker(port, r, deadline, latencies, statuses) for r in requests))
    elapsed = time.perf_counter() - began
    cpu = sum(server.cpu_times()[:2]) - cpu_before if server else float("nan")
    return {
        "rate": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "statuses": statuses,
        "server_cpu_ms_per_request": cpu / max(1, len(latencies)) * 1000,
        "server_cpu_busy": cpu / elapsed,
    }


def train_request(connection_id: str, user: str) -> bytes:
    return (
        f"POST /api/connections/{connection_id}/train-schema HTTP/1.1\r\nHost: bench\r\n"
        f"Authorization: Bearer {token(user)}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(TRAIN_BODY)}\r\n\r\n"
    ).encode() + TRAIN_BODY


def make_connections(env: dict[str, str], users: list[str]) -> dict[str, str]:
    """One saved SQLite connection per user, in the bench's own store; user -> connection id."""
    script = (
        "import json, sys\n"
        "from explorer_jobs.store.migrate import upgrade_database\n"
        "from explorer_jobs.connections.models import ConnectionCreate\n"
        "from explorer_jobs.connections.service import create_connection\n"
        "upgrade_database()\n"
        "body = ConnectionCreate(name='b', dialect='sqlite', database='/tmp/b.db')\n"
        "ids = {u: create_connection(u, body).id for u in sys.argv[1:]}\n"
        "print(json.dumps(ids))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, *users], env=env, check=True, capture_output=True)
    ids: dict[str, str] = json.loads(out.stdout)
    return ids


def bench_enqueue(env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    users = [f"user{i}" for i in range(args.concurrency)]
    connections = make_connections(env, users)
    ours_requests = [train_request(connections[u], u) for u in users]
    bare_requests = [train_request("c1", u) for u in users]
    servers = {  # name: (app dir, app, requests)
        "enqueue": (ROOT / "functions" / "enqueue", "app:app", ours_requests),
        "bare": (ROOT / "bench", "_http_bare_app:app", bare_requests),
        "bare_with_enqueue": (ROOT / "bench", "_http_bare_app:app_with_enqueue", bare_requests),
    }
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    with contextlib.ExitStack() as stack:
        running = {}
        for name, (app_dir, app, requests) in servers.items():
            port = free_port()
            process = stack.enter_context(started(uvicorn(app_dir, port, app), port, name, env))
            running[name] = (port, psutil.Process(process.pid), requests)
            asyncio.run(load(port, requests, 1.0))  # warm-up: imports, store, Redis scripts
        for _ in range(args.rounds):  # alternate, so drift on a shared machine hits all alike
            for name, (port, process, requests) in running.items():
                results[name].append(asyncio.run(load(port, requests, args.seconds, process)))
    summary: dict[str, Any] = {}
    for name, runs in results.items():
        summary[name] = {
            "rate": statistics.mean(r["rate"] for r in runs),
            "p50_ms": statistics.mean(r["p50_ms"] for r in runs),
            "p99_ms": max(r["p99_ms"] for r in runs),
            "server_cpu_ms_per_request": statistics.mean(r["server_cpu_ms_per_request"] for r in runs),
            "server_cpu_busy": statistics.mean(r["server_cpu_busy"] for r in runs),
            "statuses": runs[-1]["statuses"],
        }
    summary["ratio_to_bare"] = summary["enqueue"]["rate"] / summary["bare"]["rate"]
    summary["ratio_to_bare_with_enqueue"] = summary["enqueue"]["rate"] / summary["bare_with_enqueue"]["rate"]
    return summary


# ---------------------------------------------------------------------------------------------- SSE


class SseClients:
    """Many raw SSE connections on one loop; each records (receive time - event timestamp)."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.received = 0
        self.opened = 0
        self.failed = 0
        self.changed = asyncio.Event()

    def _on_data(self, data: bytes) -> None:
        now = time.time()
        event = json.loads(data)
        sent = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
        self.delays.append(now - sent)
        self.received += 1
        self.changed.set()

    async def client(self, port: int, user: str, stop: asyncio.Event) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            self.failed += 1
            return
        writer.write(
            (
                f"GET /api/jobs/notifications/stream HTTP/1.1\r\nHost: bench\r\n"
                f"Authorization: Bearer {token(user)}\r\nAccept: text/event-stream\r\n\r\n"
            ).encode()
        )
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                self.failed += 1
                return
            reading = asyncio.ensure_future(self._read(reader))
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
            reading.cancel()
            stopping.cancel()
        except (OSError, asyncio.IncompleteReadError):
            self.failed += 1
        finally:
            writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        buffer = b""
        opened = False
        while True:  # chunked transfer encoding: size line, data, CRLF
            size = int((await reader.readline()).strip() or b"0", 16)
            if size == 0:
                return
            buffer += (await reader.readexactly(size + 2))[:-2]
            while b"\n\n" in buffer:
                message, buffer = buffer.split(b"\n\n", 1)
                for line in message.split(b"\n"):
                    if line.startswith(b"data: "):
                        self._on_data(line[6:])
                    elif line.startswith(b"retry:") and not opened:
                        opened = True
                        self.opened += 1
                        self.changed.set()

    async def until(self, predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return True


def gateway_connections(client: redis.Redis) -> tuple[int, int]:
    """(connections named by the gateway, every connection but the bench's own)."""
    listed = client.client_list()
    named = sum(1 for c in listed if c.get("name", "").startswith("ej-sse"))
    others = sum(1 for c in listed if c.get("name", "") != "bench")
    return named, others


async def sse_run(
    port: int, gateway: psutil.Process, redis_url: str, args: argparse.Namespace
) -> dict[str, Any]:
    from explorer_jobs.queue import EnqueueRequest, Queue
    from explorer_jobs.redis_client import create_redis
    from explorer_jobs.settings import Settings

    sync_redis = redis.Redis.from_url(redis_url, decode_responses=True, client_name="bench")
    queue = Queue(create_redis(redis_url, client_name="bench"), Settings(_env_file=None, REDIS_URL=redis_url))
    users = [f"sse{i}" for i in range(args.sse_users)]
    clients = SseClients()
    stop = asyncio.Event()

    # Warm-up: one stream opened and closed, so the baseline RSS includes the imports and the hub.
    warm = asyncio.ensure_future(clients.client(port, "warm", stop))
    await clients.until(lambda: clients.opened == 1, 10)
    warm_stop, stop = stop, asyncio.Event()
    warm_stop.set()
    await warm
    clients.opened = 0
    rss_before = gateway.memory_info().rss

    tasks = []
    for i in range(args.sse_clients):
        tasks.append(asyncio.ensure_future(clients.client(port, users[i % len(users)], stop)))
        if i % 100 == 99:  # in waves, as browsers would arrive, not one SYN flood
            await asyncio.sleep(0.01)
    all_open = await clients.until(lambda: clients.opened + clients.failed >= args.sse_clients, 60)
    await asyncio.sleep(0.5)  # let the reader settle on the full key set before counting
    rss_after = gateway.memory_info().rss
    named, others = gateway_connections(sync_redis)
    per_user = args.sse_clients // len(users)

    # Burst: one transition per user at once (enqueue_many: one script call); each reaches its clients.
    clients.delays.clear()
    clients.received = 0
    await queue.enqueue_many([EnqueueRequest("schema_training", {"connectionId": "c"}, u) for u in users])
    burst_done = await clients.until(lambda: clients.received >= args.sse_clients, 30)
    burst = list(clients.delays)

    # Steady: transitions at a fixed rate for random users.
    clients.delays.clear()
    clients.received = 0
    sent = 0
    began = time.monotonic()
    interval = 1 / args.sse_rate
    while time.monotonic() - began < args.seconds:
        await queue.enqueue("schema_training", {"connectionId": "c"}, user_id=random.choice(users))
        sent += 1
        await asyncio.sleep(max(0.0, began + sent * interval - time.monotonic()))
    steady_done = await clients.until(lambda: clients.received >= sent * per_user, 30)
    steady = list(clients.delays)

    # Shutdown with every stream open: SIGTERM to exit.
    stop_began = time.monotonic()
    gateway.send_signal(signal.SIGTERM)
    ended = await asyncio.to_thread(gateway.wait, 30)
    stop_seconds = time.monotonic() - stop_began
    stop.set()
    await asyncio.gather(*tasks)
    await queue.redis.aclose()
    sync_redis.close()
    return {
        "clients": args.sse_clients,
        "users": len(users),
        "opened": clients.opened,
        "failed": clients.failed,
        "all_open": all_open,
        "redis_connections_named": named,
        "redis_connections_total": others,
        "rss_before_mb": rss_before / 2**20,
        "rss_after_mb": rss_after / 2**20,
        "kib_per_client": (rss_after - rss_before) / 1024 / args.sse_clients,
        "burst": {
            "events": len(burst),
            "complete": burst_done,
            "p50_ms": percentile(burst, 0.5) * 1000,
            "p99_ms": percentile(burst, 0.99) * 1000,
            "max_ms": max(burst, default=0) * 1000,
        },
        "steady": {
            "transitions": sent,
            "rate": args.sse_rate,
            "deliveries": len(steady),
            "complete": steady_done,
            "p50_ms": percentile(steady, 0.5) * 1000,
            "p99_ms": percentile(steady, 0.99) * 1000,
            "max_ms": max(steady, default=0) * 1000,
        },
        "sigterm_exit_s": stop_seconds,
        "exit_code": ended,
    }


def bench_sse(env: dict[str, str], redis_url: str, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    with started(uvicorn(ROOT / "functions" / "sse_gateway", port), port, "SSE gateway", env) as process:
        gateway = psutil.Process(process.pid)
        return asyncio.run(sse_run(port, gateway, redis_url, args))


# ---------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="per measured phase")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of bare/enqueue")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="keep-alive connections of the load client"
    )
    parser.add_argument("--sse-clients", type=int, default=1000)
    parser.add_argument("--sse-users", type=int, default=250, help="the clients are spread over these users")
    parser.add_argument("--sse-rate", type=float, default=200.0, help="transitions/s in the steady phase")
    parser.add_argument("--skip-enqueue", action="store_true")
    parser.add_argument("--skip-sse", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ej-http-bench-") as tmp:
        redis_port = free_port()
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        redis_args = [
            "redis-server",
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            tmp,
            "--maxclients",
            "10000",
        ]
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "JWT_SECRET": SECRET,
            "EXPLORER_JOBS_HOME": tmp,
            "DATABASE_URL": f"sqlite:///{tmp}/store.db",
            "ALLOW_SQLITE_CONNECTIONS": "true",
            "ENQUEUE_RATE_LIMIT": "1000000000",
            "PYTHONPATH": str(ROOT / "layers" / "explorer_jobs"),
        }
        report: dict[str, Any] = {"cpus": os.cpu_count()}
        with started(redis_args, redis_port, "redis-server"):
            if not args.skip_enqueue:
                report["enqueue"] = bench_enqueue(env, args)
            if not args.skip_sse:
                report["sse"] = bench_sse(env, redis_url, args)
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
