"""The dashboard in real headless Chromium against the real dev stack (API, SSE gateway, worker).

Every wait is a Playwright expectation with a timeout; nothing sleeps. Screenshots go to a temporary
folder, or to docs/ (the README's pictures) when UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.dashboard.stack import ROOT, STACK_REDIS_URL, DevStack
from tests.support.databases import run_sql, throwaway_pg_database

pytestmark = pytest.mark.slow

RESTART_TIMEOUT_MS = 60_000  # the stack's stop and start, plus the client's backoff (capped at 30 s)

WAREHOUSE_SCHEMA = """
CREATE SCHEMA sales;
CREATE SCHEMA inventory;
CREATE TABLE sales.customers (id serial PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL);
CREATE TABLE sales.orders (id serial PRIMARY KEY, customer_id int NOT NULL REFERENCES sales.customers(id),
  total numeric(10, 2) NOT NULL CHECK (total >= 0), placed_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE sales.invoices (id serial PRIMARY KEY, order_id int NOT NULL REFERENCES sales.orders(id));
CREATE TABLE inventory.products (id serial PRIMARY KEY, sku text NOT NULL UNIQUE, title text NOT NULL);
CREATE TABLE inventory.stock (product_id int PRIMARY KEY REFERENCES inventory.products(id),
  quantity int NOT NULL CHECK (quantity >= 0));
CREATE TABLE inventory.warehouses (id serial PRIMARY KEY, city text NOT NULL);
CREATE TABLE public.audit_log (id bigserial PRIMARY KEY, happened_at timestamptz NOT NULL DEFAULT now(),
  what text)
"""


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        (ROOT / "docs").mkdir(exist_ok=True)
        return ROOT / "docs"
    return tmp_path


def sign_in_as_demo(page: Page) -> None:
    page.goto("/")
    page.get_by_role("button", name="Sign in as demo user").click()
    expect(page.locator("#live-status")).to_have_text("Live")
    expect(page.get_by_text("Signed in as demo")).to_be_visible()


def job_row(page: Page, job_id: str) -> Locator:
    return page.locator(f'#jobs-body tr[data-job-id="{job_id}"]')


def toast(page: Page, title: str) -> Locator:
    return page.locator(".toast", has_text=title)


def start_training(page: Page) -> str:
    """Press Start in the open re-train dialog; the id of the job it queued."""
    with page.expect_response(lambda r: r.url.endswith("/train-schema")) as answer:
        page.get_by_role("button", name="Start training").click()
    assert answer.value.status == 202, answer.value.text()
    job_id: str = answer.value.json()["jobId"]
    return job_id


def test_sign_in_as_demo_and_train_chosen_tables_from_the_retrain_dialog(
    page: Page, demo: dict[str, Any]
) -> None:
    sign_in_as_demo(page)
    page.get_by_role("link", name="Connections").click()
    name = demo["connection"]["name"]
    page.get_by_role("button", name=f"Re-train {name}").click()

    dialog = page.get_by_role("dialog", name="Re-train schema")
    summary = dialog.locator("#retrain-summary")
    expect(summary).to_have_text("1 schema, 4 tables")  # everything, once the listing has loaded
    dialog.get_by_role("button", name="Clear all").click()
    expect(summary).to_have_text("Nothing selected")
    expect(dialog.get_by_role("button", name="Start training")).to_be_disabled()

    dialog.get_by_role("button", name="Tables of main (4)").click()
    dialog.get_by_role("checkbox", name="orders", exact=True).check()
    # Choosing a table chose its schema.
    expect(dialog.get_by_role("checkbox", name="main", exact=True)).to_be_checked()
    dialog.get_by_role("checkbox", name="customers", exact=True).check()
    expect(summary).to_have_text("1 schema, 2 tables")
    dialog.get_by_role("checkbox", name="Indexes").uncheck()

    with page.expect_request(lambda r: r.url.endswith("/train-schema")) as sent:
        job_id = start_training(page)
    body = sent.value.post_data_json
    assert body is not None
    assert body["schemas"] == ["main"]
    assert sorted(body["tables"]["main"]) == ["customers", "orders"]
    assert body["options"]["includeIndexes"] is False and body["options"]["includeColumns"] is True
    expect(dialog).to_be_hidden()

    # The job appears in the jobs view and the stream carries it to completed.
    row = job_row(page, job_id)
    expect(row.locator(".badge")).to_have_text("completed")
    expect(row.locator(".percent")).to_have_text("100%")
    expect(row.locator("td").nth(6)).to_have_text(re.compile(r"\d{2}:\d{2}:\d{2}"))  # "Finished" is a time
    expect(toast(page, "Schema training completed")).to_contain_text("2 tables read")

    row.get_by_role("button", name="Schema training").click()
    detail = page.locator("#job-detail")
    expect(detail).to_contain_text("only some tables in main: 2 tables")
    expect(detail).to_contain_text("left out: includeIndexes")
    expect(detail).to_contain_text(re.compile(r"Version \d+"))

    page.get_by_role("link", name="Connections").click()
    connection_row = page.locator(f'tr[data-connection-id="{demo["connection"]["id"]}"]')
    expect(connection_row.locator("time")).to_be_visible()  # "Last trained" is set
    connection_row.get_by_role("button", name=f"Test {name}").click()
    expect(connection_row.locator(".test-result")).to_have_text(re.compile(r"Connected in \d+ ms"))


def test_add_a_postgres_connection_train_two_schemas_and_see_what_changed(
    page: Page, screenshots: Path
) -> None:
    with throwaway_pg_database("ej_dash") as url:
        run_sql(url, WAREHOUSE_SCHEMA)
        sign_in_as_demo(page)
        page.get_by_role("link", name="Connections").click()

        form = page.locator("#connection-form")
        form.get_by_label("Name", exact=True).fill("Warehouse (PostgreSQL)")
        form.get_by_label("Host").fill(str(url.host))
        form.get_by_label("Port").fill(str(url.port))
        form.get_by_label("Database").fill(str(url.database))
        form.get_by_label("User name").fill(str(url.username))
        form.get_by_role("button", name="Save and test connection").click()
        status = page.locator("#connection-form-status")
        expect(status).to_have_text(re.compile(r"Saved .* Connected in \d+ ms"))

        page.get_by_role("button", name="Re-train Warehouse (PostgreSQL)").click()
        dialog = page.get_by_role("dialog", name="Re-train schema")
        summary = dialog.locator("#retrain-summary")
        expect(summary).to_have_text("3 schemas, 7 tables")
        dialog.get_by_role("button", name="Clear all").click()
        dialog.get_by_role("button", name="Tables of sales (3)").click()
        dialog.get_by_role("checkbox", name="customers", exact=True).check()
        dialog.get_by_role("checkbox", name="orders", exact=True).check()
        dialog.get_by_role("checkbox", name="inventory", exact=True).check()
        expect(summary).to_have_text("2 schemas, 5 tables")
        dialog.get_by_role("button", name="Tables of inventory (3)").click()
        page.screenshot(path=screenshots / "retrain-dialog.png")
        first = start_training(page)
        expect(job_row(page, first).locator(".badge")).to_have_text("completed")

        # The database changes; a full re-train records what changed since the first version.
        run_sql(url, "ALTER TABLE sales.customers ADD COLUMN note text")
        page.get_by_role("link", name="Connections").click()
        page.get_by_role("button", name="Re-train Warehouse (PostgreSQL)").click()
        expect(summary).to_have_text("3 schemas, 7 tables")
        second = start_training(page)
        expect(job_row(page, second).locator(".badge")).to_have_text("completed")

        page.get_by_role("link", name="Connections").click()
        page.get_by_role("button", name="Schema of Warehouse (PostgreSQL)").click()
        schema = page.get_by_role("dialog", name="Cached schema: Warehouse (PostgreSQL)")
        expect(schema).to_contain_text("2 tables added, 0 removed, 1 altered.")
        expect(schema).to_contain_text("sales.customers — columns added: note")
        expect(schema).to_contain_text("public.audit_log")
        expect(schema).to_contain_text("3 schemas, 7 tables")
        schema.get_by_role("button", name="Close").click()

        page.get_by_role("link", name="Jobs").click()
        job_row(page, second).get_by_role("button", name="Schema training").click()
        expect(page.locator("#job-detail")).to_contain_text("columns added: note")
        expect(page.locator("#queue-counts")).to_contain_text("Schema training")
        # Toasts would cover the detail in the picture: they go by themselves within seconds.
        expect(page.locator(".toast")).to_have_count(0, timeout=30_000)
        page.screenshot(path=screenshots / "dashboard.png", full_page=True)

        page.get_by_role("link", name="Connections").click()
        page.get_by_role("button", name="Delete Warehouse (PostgreSQL)").click()
        page.get_by_role("dialog").get_by_role("button", name="Delete").click()
        expect(toast(page, "Connection deleted")).to_be_visible()
        expect(page.get_by_role("button", name="Delete Warehouse (PostgreSQL)")).to_have_count(0)


@contextmanager
def stalled_database_server() -> Iterator[int]:
    """A port that accepts TCP connections and never answers; a training against it waits on connect.

    Closing the listener resets the connections it never accepted, so the training then fails at once.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.close()


def test_cancel_a_queued_job_waiting_behind_a_stalled_training(
    page: Page, stack: DevStack, demo: dict[str, Any]
) -> None:
    """The stack runs one job at a time: a training stuck connecting keeps the next one queued, so the
    cancel is certain to hit a queued job (no race with a fast training)."""
    cancel_button = re.compile(r"^Cancel ")
    with stack.client(demo["token"]) as http:
        with stalled_database_server() as port:
            created = http.post(
                "/api/connections",
                json={
                    "name": "Stalled (PostgreSQL)",
                    "dialect": "postgresql",
                    "host": "127.0.0.1",
                    "port": port,
                    "database": "never",
                    "username": "nobody",
                },
            )
            assert created.status_code == 201, created.text
            stalled_connection = created.json()["id"]
            sign_in_as_demo(page)
            stalled = http.post(f"/api/connections/{stalled_connection}/train-schema").json()["jobId"]
            expect(job_row(page, stalled).locator(".badge")).to_have_text("active")

            waiting = http.post(f"/api/connections/{demo['connection']['id']}/train-schema").json()["jobId"]
            row = job_row(page, waiting)
            expect(row.locator(".badge")).to_have_text("queued")
            row.get_by_role("button", name=cancel_button).click()
            expect(row.locator(".badge")).to_have_text("cancelled")
            expect(toast(page, "Schema training cancelled")).to_be_visible()
            assert http.get(f"/api/jobs/{waiting}").json()["attempts"] == 0, "it never ran"
            expect(job_row(page, stalled).locator(".badge")).to_have_text("active")

        # The stalled server is gone: its training fails, and the page says why.
        expect(job_row(page, stalled).locator(".badge")).to_have_text("failed")
        expect(toast(page, "Schema training failed")).to_contain_text("could not connect")

        # A cancelled job can be retried; with the worker free again it runs to the end.
        row.get_by_role("button", name=re.compile(r"^Retry ")).click()
        expect(row.locator(".badge")).to_have_text("completed")
        assert http.delete(f"/api/connections/{stalled_connection}").status_code == 204


def enqueue_directly(user_id: str, connection_id: str) -> str:
    """Queue a training straight into Redis (the API is down); only the event stream can tell the page."""
    import explorer_jobs.training.payload  # noqa: F401  (registers the job type)
    from explorer_jobs.queue import Queue
    from explorer_jobs.redis_client import create_redis
    from explorer_jobs.settings import Settings

    async def enqueue() -> str:
        settings = Settings(_env_file=None, REDIS_URL=STACK_REDIS_URL)
        client = create_redis(settings=settings)
        try:
            queued = await Queue(client, settings).enqueue(
                "schema_training", {"connectionId": connection_id}, user_id=user_id
            )
            return queued.job.job_id
        finally:
            await client.aclose()

    # A thread of its own: Playwright's sync API keeps an event loop on this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, enqueue()).result(timeout=30)


def test_the_stream_reconnects_after_a_server_restart_and_shows_what_happened_meanwhile(
    page: Page, stack: DevStack, demo: dict[str, Any]
) -> None:
    sign_in_as_demo(page)
    with stack.client(demo["token"]) as http:
        before = http.post(f"/api/connections/{demo['connection']['id']}/train-schema").json()["jobId"]
    # Seen live, so the page has an event id to resume from.
    expect(job_row(page, before).locator(".badge")).to_have_text("completed")

    stack.stop()
    expect(page.locator("#live-status")).to_have_attribute("data-state", "reconnecting")
    missed = enqueue_directly(demo["userId"], demo["connection"]["id"])

    resumed = lambda r: "/notifications/stream" in r.url and "lastEventId=" in r.url  # noqa: E731
    with page.expect_request(resumed, timeout=RESTART_TIMEOUT_MS):
        stack.start()
    expect(page.locator("#live-status")).to_have_text("Live", timeout=RESTART_TIMEOUT_MS)

    # Queued while the server was down, run by the restarted worker, shown by the resumed stream.
    row = job_row(page, missed)
    expect(row.locator(".badge")).to_have_text("completed")
    expect(row.locator(".percent")).to_have_text("100%")
    expect(toast(page, "Schema training completed").last).to_be_visible()
