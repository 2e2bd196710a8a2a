"""`explorer-jobs`: run the stack or its parts."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import signal
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

log = logging.getLogger("explorer_jobs.cli")


def _setup_logging() -> None:
    from explorer_jobs.observability import configure_logging

    configure_logging()


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed (uvicorn[standard] brings it; a worker's event loop turns
    faster on it), else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def _import_modules(modules: Sequence[str]) -> None:
    # Modules named with --import register extra job types and processors (tests, the bench).
    if "" not in sys.path:
        sys.path.insert(0, "")
    for module in modules:
        importlib.import_module(module)


async def run_worker(concurrency: int | None, queue_name: str | None) -> None:
    from explorer_jobs.queue import Queue
    from explorer_jobs.redis_client import create_redis
    from explorer_jobs.worker import Worker

    redis = create_redis()
    worker = Worker(Queue(redis, name=queue_name), concurrency=concurrency)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    try:
        await worker.run()
    finally:
        await redis.aclose()


def run_api(host: str, port: int) -> None:
    """Every HTTP function in one ASGI app under uvicorn; Ctrl-C/SIGTERM end open event streams."""
    from explorer_jobs.api.combined import create_combined_app
    from explorer_jobs.api.server import make_server

    make_server(create_combined_app(), host=host, port=port, log_config=None).run()


async def run_scheduler_alone(tick: float | None) -> None:
    from explorer_jobs.queue import Queue
    from explorer_jobs.redis_client import create_redis
    from explorer_jobs.scheduling import run_scheduler

    redis = create_redis()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await run_scheduler(Queue(redis), stop, tick)
    finally:
        await redis.aclose()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="explorer-jobs", description="DB Explorer's async job system")
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser(
        "dev", help="the whole stack in one process tree: API, SSE gateway, worker, scheduler"
    )
    api = sub.add_parser("api", help="serve every HTTP function in one app (uvicorn)")
    for cmd in (dev, api):
        cmd.add_argument("--host", default="127.0.0.1")
        cmd.add_argument("--port", type=int, default=8000)
    worker = sub.add_parser("worker", help="run jobs from the queue (WORKER_CONCURRENCY at once)")
    worker.add_argument(
        "--concurrency", type=int, default=None, help="jobs at once (default WORKER_CONCURRENCY)"
    )
    worker.add_argument("--queue", default=None, help="queue name (default QUEUE_NAME)")
    worker.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        help="a module to import first (registers extra job types and processors)",
    )
    scheduler = sub.add_parser("scheduler", help="queue scheduled re-trainings on every tick")
    scheduler.add_argument(
        "--tick", type=float, default=None, help="seconds between ticks (SCHEDULER_TICK_SECONDS)"
    )
    sub.add_parser("migrate", help="apply the store's database migrations")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging()
    with contextlib.suppress(KeyboardInterrupt):
        if args.command == "worker":
            _import_modules(args.imports)
            run(run_worker(args.concurrency, args.queue))
        elif args.command == "api":
            run_api(args.host, args.port)
        elif args.command == "dev":
            from explorer_jobs.devstack import run_dev

            run(run_dev(args.host, args.port))
        elif args.command == "scheduler":
            run(run_scheduler_alone(args.tick))
        elif args.command == "migrate":
            from explorer_jobs.store.migrate import upgrade_database

            upgrade_database()
            log.info("the store is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
