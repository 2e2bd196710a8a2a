"""Fixtures of the dashboard's browser tests: the real dev stack (see `stack.py`) and Debian's
headless Chromium driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.dashboard.stack import CHROMIUM, CHROMIUM_ARGS, CHROMIUM_INSTALL, DevStack, flush_stack_redis


def _check_routes(stack: DevStack) -> dict[str, Any]:
    """Fail with what is missing, rather than with a browser timeout further on."""
    page = httpx.get(f"{stack.base}/", timeout=10)
    if page.status_code != 200 or "text/html" not in page.headers.get("content-type", ""):
        pytest.fail(
            "the dashboard is not served at / (got "
            f"{page.status_code}): mount it in explorer_jobs/api/combined.py, "
            "`return create_app([*routers, dashboard.router])` (from explorer_jobs import dashboard)"
        )
    login = httpx.get(f"{stack.base}/dashboard/dev-login", timeout=10)
    assert login.status_code == 200, f"dev-login under explorer-jobs dev: {login.status_code} {login.text}"
    demo: dict[str, Any] = login.json()
    with stack.client(demo["token"]) as http:
        listed = http.get("/api/connections")
    if listed.status_code != 200:
        pytest.fail(
            f"GET /api/connections answered {listed.status_code}: the connections routes (API.md) are missing"
        )
    connections = listed.json()["connections"]
    demo["connection"] = next(c for c in connections if c["dialect"] == "sqlite")
    return demo


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    flush_stack_redis()
    dev = DevStack(tmp_path_factory.mktemp("dashboard") / "home")
    dev.start()
    try:
        yield dev
    finally:
        dev.stop()
        flush_stack_redis()


@pytest.fixture(scope="module")
def demo(stack: DevStack) -> dict[str, Any]:
    """The demo user's token (`token`, `userId`) and their SQLite connection (`connection`)."""
    return _check_routes(stack)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"headless Chromium is not installed at {CHROMIUM}. Install it (as root) with:\n"
            f"    {CHROMIUM_INSTALL}\n"
            "(Playwright's own browser download, `playwright install`, does not work on these machines.)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the `playwright` package is missing: pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, stack: DevStack) -> Iterator[Any]:
    """A fresh tab (its own sessionStorage) on the stack, 1400x900; page errors fail the test."""
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)
    context = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=stack.base)
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield tab
    finally:
        context.close()
    assert not errors, f"the page raised: {errors}"
