"""Where one enqueue's time goes: the round trip, the script's Redis time, and our Python.

    .venv/bin/python bench/enqueue_breakdown.py [--n 20000]

Starts a throwaway `redis-server` on a free loopback port (never the shared one) and prints, per
call: a `PING` round trip with the blocking client, `SyncQueue.enqueue` as a whole, each Python
step of it, and the enqueue script's Redis time (`INFO commandstats`) in full and with one part
left out at a time (copies of the script, run against the same server; not the shipped script).
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

import redis
from pydantic import BaseModel

from explorer_jobs.enqueueing import EnqueueRequest, created_job, encode_request, enqueue_args
from explorer_jobs.jobtypes import JobTypeSpec, register_job_type
from explorer_jobs.keys import QueueKeys
from explorer_jobs.scripts import script_source
from explorer_jobs.settings import Settings
from explorer_jobs.sync_queue import SyncQueue


class NoopPayload(BaseModel):
    t: float


register_job_type(JobTypeSpec("bench_noop", NoopPayload, max_attempts=1))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def per_call_us(n: int, fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


def script_us(client: redis.Redis, source: str, settings: Settings, keys: QueueKeys, n: int) -> float:
    client.flushdb()
    script = client.register_script(source)
    client.config_resetstat()
    for _ in range(n):
        job = encode_request(EnqueueRequest("bench_noop", {"t": 1.0}, "bench"))
        script(keys=[keys.queued], args=[keys.prefix, *enqueue_args(settings, [job], None)])
    stats: dict[str, Any] = client.info("commandstats")
    return float(stats["cmdstat_evalsha"]["usec_per_call"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=tmp,
            stdout=subprocess.DEVNULL,
        )
        try:
            url = f"redis://127.0.0.1:{port}/0"
            client = redis.Redis.from_url(url)
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            settings = Settings(_env_file=None, REDIS_URL=url)  # type: ignore[call-arg]
            report(client, settings, args.n)
        finally:
            server.terminate()
            server.wait(10)


def report(client: redis.Redis, settings: Settings, n: int) -> None:
    queue = SyncQueue.connect(settings)
    queue.enqueue("bench_noop", {"t": 1.0}, user_id="bench")
    job = encode_request(EnqueueRequest("bench_noop", {"t": 1.0}, "bench"))
    reply = [job.args[0], 1, "queued", "1700000000000"]

    def line(name: str, us: float, extra: str = "") -> None:
        print(f"{name:44s} {us:7.1f} us{extra}")

    line("PING round trip", per_call_us(n, client.ping))
    whole = per_call_us(n, lambda: queue.enqueue("bench_noop", {"t": time.time()}, user_id="bench"))
    line("SyncQueue.enqueue, whole", whole, f"  ({1e6 / whole:,.0f}/s)")
    request = EnqueueRequest("bench_noop", {"t": 1.0}, "bench")
    line("  python: validate and encode", per_call_us(n, lambda: encode_request(request)))
    line("  python: pack the arguments", per_call_us(n, lambda: enqueue_args(settings, [job], None)))
    line("  python: build the Job", per_call_us(n, lambda: created_job(job, reply)))
    keys = QueueKeys.for_queue(settings.KEY_PREFIX, settings.QUEUE_NAME)
    full = script_source("enqueue")
    body = full.index("local maxlen, retention, idem_ttl")
    variants = {
        "script, full": full,
        "  without the event": full.replace(
            "    emit(maxlen, user, 'job_queued', id, jtype, status, 0, nil, '')\n", ""
        ),
        "  without the counters": full.replace("\nflush_counts()\nreturn out", "\nreturn out"),
        "  without the stream's age trim": full.replace(
            "redis.call('XTRIM', skey, 'MINID', '~', (NOW - retention) .. '-0')", ""
        ).replace("redis.call('PEXPIRE', skey, retention)", ""),
        "  the shared prelude alone": full[:body] + "return 1",
        "  `return 1` with the same arguments": "return 1",
    }
    for name, source in variants.items():
        line(name + " (Redis time)", script_us(client, source, settings, keys, min(n, 5_000)))
    queue.close()


if __name__ == "__main__":
    main()
