"""Where one enqueue's time goes: the round trip, the script's Redis time, and our Python.

    .venv/bin/python bench/enqueue_breakdown.py [--n 20000]

Starts a throwaway `redis-server` on a free loopback port (never the shared one) and prints, per
call: a `PING` round trip with the blocking client, `SyncQueue.enqueue` as a whole (and with its
script call made through redis-py's generic `Script` path instead of the queue's own connection),
each Python step, and the enqueue script's Redis time (`INFO commandstats`) in full and with one
part left out or changed at a time (copies of the script, run against the same server; not the
shipped script). The timed loops, and the script variants, take turns in 5 rounds and print
medians: on a shared machine a burst of someone else's load then lands on all of them alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import redis
from _throwaway_redis import throwaway_redis
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


def per_call_us(n: int, fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


def interleaved_us(n: int, candidates: dict[str, Callable[[], Any]], rounds: int = 5) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            times[name].append(per_call_us(n // rounds, fn))
    return {name: statistics.median(t) for name, t in times.items()}


def edited(source: str, *changes: tuple[str, str]) -> str:
    """The script with each (old, new) change made; each old part must be in it (a stale variant
    would time the shipped script)."""
    for old, new in changes:
        if old not in source:
            raise ValueError(f"not in the enqueue script: {old!r}")
        source = source.replace(old, new)
    return source


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
    with throwaway_redis() as url:
        client = redis.Redis.from_url(url)
        settings = Settings(_env_file=None, REDIS_URL=url)  # type: ignore[call-arg]
        report(client, settings, args.n)


def report(client: redis.Redis, settings: Settings, n: int) -> None:
    queue = SyncQueue.connect(settings)
    queue.enqueue("bench_noop", {"t": 1.0}, user_id="bench")
    job = encode_request(EnqueueRequest("bench_noop", {"t": 1.0}, "bench"))
    reply = [job.args[0], 1, "queued", "1700000000000"]

    def line(name: str, us: float, extra: str = "") -> None:
        print(f"{name:44s} {us:7.1f} us{extra}")

    keys = QueueKeys.for_queue(settings.KEY_PREFIX, settings.QUEUE_NAME)
    request = EnqueueRequest("bench_noop", {"t": 1.0}, "bench")
    generic = SyncQueue.connect(settings)
    generic._pool = None  # the script call through redis-py's `Script`, as on the cluster
    timed = interleaved_us(
        n,
        {
            "PING round trip": client.ping,
            "SyncQueue.enqueue, whole": lambda: queue.enqueue(
                "bench_noop", {"t": time.time()}, user_id="bench"
            ),
            "  the same through redis-py's Script": lambda: generic.enqueue(
                "bench_noop", {"t": time.time()}, user_id="bench"
            ),
            "  python: validate and encode": lambda: encode_request(request),
            "  python: pack the arguments": lambda: enqueue_args(settings, [job], None),
            "  python: build the Job": lambda: created_job(job, reply),
        },
    )
    for name, us in timed.items():
        line(name, us, f"  ({1e6 / us:,.0f}/s)" if "whole" in name or "Script" in name else "")
    generic.close()
    full = script_source("enqueue")
    body = full.index("local maxlen, retention, idem_ttl")
    variants = {
        "script, full": full,
        "  without the event": edited(
            full, ("    emit(maxlen, user, 'job_queued', id, jtype, status, 0, nil, '')\n", "")
        ),
        "  without the counters": edited(
            full,
            ("      redis.call('HINCRBY', P .. 'counts', field, 1)\n", ""),
            ("      redis.call('HINCRBY', P .. 'ucounts:' .. user, field, 1)\n", ""),
        ),
        "  without the stream's age trim": edited(
            full,
            ("redis.call('XTRIM', skey, 'MINID', '~', (NOW - retention) .. '-0')", ""),
            ("redis.call('PEXPIRE', skey, retention)", ""),
        ),
        # One job through common.lua's batching tables, as a bulk call writes its jobs.
        "  with one job batched like many": edited(full, ("    if #jobs == 1 then\n", "    if false then\n")),
        "  the shared prelude alone": full[:body] + "return 1",
        "  `return 1` with the same arguments": "return 1",
    }
    rounds = 5
    script_times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, source in variants.items():
            script_times[name].append(script_us(client, source, settings, keys, min(n, 5_000) // rounds))
    for name, times in script_times.items():
        line(name + " (Redis time)", statistics.median(times))
    queue.close()


if __name__ == "__main__":
    main()
