"""Client CPU per asyncio `Queue.enqueue`, through the batcher and through redis-py's `Script` path.

    .venv/bin/python bench/async_enqueue_cpu.py [--n 8000] [--producers 1,16]

Starts a throwaway `redis-server` on a free loopback port (never the shared one). For each number
of concurrent producers (coroutines on one uvloop loop, each enqueueing one job at a time), it
measures this process's CPU time per enqueue (`time.process_time`, so Redis's own CPU is not
counted) two ways: the queue as shipped (`script_batching.py`: concurrent calls share one write on
the batcher's own connection) and the same queue with the batcher turned off (each call through
redis-py's `Script`, a pooled connection per call). The two take turns in 5 rounds; medians.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import uvloop
from _throwaway_redis import throwaway_redis

from explorer_jobs.queue import Queue
from explorer_jobs.redis_client import create_redis
from explorer_jobs.script_batching import ScriptBatcher
from explorer_jobs.settings import Settings

ROUNDS = 5


async def cpu_us_per_enqueue(queue: Queue, producers: int, n: int) -> float:
    per_producer = max(1, n // producers)

    async def produce() -> None:
        for _ in range(per_producer):
            await queue.enqueue("schema_training", {"connectionId": "bench"}, user_id="bench")

    began = time.process_time()
    await asyncio.gather(*(produce() for _ in range(producers)))
    return (time.process_time() - began) / (per_producer * producers) * 1e6


async def measure(url: str, producer_counts: list[int], n: int) -> dict[str, Any]:
    settings = Settings(_env_file=None, REDIS_URL=url, ENQUEUE_RATE_LIMIT=0)  # type: ignore[call-arg]
    batched = Queue(create_redis(url, settings=settings), settings)
    plain = Queue(create_redis(url, settings=settings), settings)
    plain._enqueue_batcher = None  # redis-py's Script path, one pooled call per enqueue
    assert isinstance(batched._enqueue_batcher, ScriptBatcher)
    sizes: list[int] = []
    send = batched._enqueue_batcher._send_batch

    def counted(link: Any, batch: list[Any]) -> None:
        sizes.append(len(batch))
        send(link, batch)

    batched._enqueue_batcher._send_batch = counted  # type: ignore[method-assign]
    report: dict[str, Any] = {}
    for queue in (batched, plain):  # warm-up: connections, script cache, imports
        await cpu_us_per_enqueue(queue, 4, 400)
    for producers in producer_counts:
        times: dict[str, list[float]] = {"batcher": [], "redis-py Script": []}
        sizes.clear()
        for _ in range(ROUNDS):
            times["batcher"].append(await cpu_us_per_enqueue(batched, producers, n))
            times["redis-py Script"].append(await cpu_us_per_enqueue(plain, producers, n))
        report[f"{producers} producer(s)"] = {
            **{name: round(statistics.median(values), 1) for name, values in times.items()},
            "calls per batch (batcher)": round(statistics.mean(sizes), 1),
        }
    for queue in (batched, plain):
        await queue.redis.aclose()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=8000, help="enqueues per round and way")
    parser.add_argument("--producers", default="1,16", help="comma-separated counts of producers")
    args = parser.parse_args()
    producer_counts = [int(p) for p in args.producers.split(",")]
    with throwaway_redis() as url:
        report = uvloop.run(measure(url, producer_counts, args.n))
    print("client CPU µs per enqueue, medians of", ROUNDS, "rounds:")
    for producers, row in report.items():
        print(f"  {producers}: {row}")


if __name__ == "__main__":
    main()
