"""The dashboard router on its own (no browser): the page, its assets, the dev sign-in, and that the
package ships every file the page needs."""

from __future__ import annotations

import fnmatch
import os
import re
import tomllib
from collections.abc import AsyncIterator
from importlib.resources import files
from pathlib import Path

import httpx
import jwt
import pytest

from explorer_jobs.api.app import create_app
from explorer_jobs.dashboard import router
from explorer_jobs.dashboard.router import assets
from explorer_jobs.settings import get_settings
from tests.dashboard.stack import ROOT

SECRET = "dashboard-router-test-secret-0123456789"


@pytest.fixture
async def client(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.delenv("DEV_DEMO_LOGIN", raising=False)
    monkeypatch.setenv("JWT_SECRET", SECRET)
    get_settings.cache_clear()
    transport = httpx.ASGITransport(create_app([router]))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http
    get_settings.cache_clear()


@pytest.mark.parametrize("path", ["/", "/dashboard"])
async def test_the_page_is_served_with_a_strict_content_security_policy(
    client: httpx.AsyncClient, path: str
) -> None:
    page = await client.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="static/app.js">' in page.text


async def test_every_file_the_page_and_its_modules_load_is_served_with_its_type(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/")).text
    wanted = set(re.findall(r'(?:src|href)="static/([^"]+)"', page))
    for name in list(assets()):
        if name.endswith(".js"):
            wanted |= set(re.findall(r"from '\./([^']+)'", (await client.get(f"/static/{name}")).text))
    assert {"app.js", "dashboard.css", "notifications.js", "jobs.js", "retrain.js"} <= wanted
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for name in sorted(wanted):
        answer = await client.get(f"/static/{name}")
        assert answer.status_code == 200, name
        assert answer.headers["content-type"].startswith(types[name[name.rfind(".") :]]), name


@pytest.mark.parametrize(
    "path", ["/static/nope.js", "/static/..%2Frouter.py", "/static/%2E%2E/router.py", "/static/index.htm"]
)
async def test_only_the_packaged_assets_are_served(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.get(path)
    assert answer.status_code == 404
    assert answer.json() == {"detail": "Not Found"}


async def test_an_unchanged_asset_answers_304_to_its_etag(client: httpx.AsyncClient) -> None:
    first = await client.get("/static/app.js")
    again = await client.get("/static/app.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    assert (await client.head("/static/app.js")).status_code == 200


async def test_dev_login_is_not_there_unless_the_dev_stack_turned_it_on(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/dashboard/dev-login")
    assert answer.status_code == 404
    assert answer.json() == (await client.get("/dashboard/no-such-page")).json()  # indistinguishable


async def test_dev_login_hands_out_a_demo_token_under_dev(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEV_DEMO_LOGIN", "true")
    get_settings.cache_clear()
    answer = await client.get("/dashboard/dev-login")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["userId"] == "demo"
    assert jwt.decode(body["token"], SECRET, algorithms=["HS256"])["sub"] == "demo"


def test_the_dev_stack_turns_the_demo_login_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from explorer_jobs.devstack import prepare_environment

    monkeypatch.setenv("JWT_SECRET", SECRET)
    # prepare_environment writes os.environ itself (setdefault): put back exactly what was there.
    saved = {name: os.environ.get(name) for name in ("DEV_DEMO_LOGIN", "ALLOW_SQLITE_CONNECTIONS")}
    os.environ.pop("DEV_DEMO_LOGIN", None)
    try:
        prepare_environment(tmp_path)
        assert get_settings().DEV_DEMO_LOGIN is True
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()


def test_the_wheel_ships_every_dashboard_file() -> None:
    """Each file in dashboard/static/ matches a package-data glob, so an installed wheel serves it too."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["explorer_jobs"]
    static = files("explorer_jobs.dashboard").joinpath("static")
    shipped = [entry.name for entry in static.iterdir() if entry.is_file()]
    assert "index.html" in shipped
    for name in shipped:
        assert any(fnmatch.fnmatch(f"dashboard/static/{name}", glob) for glob in globs), name
    assert set(assets()) == set(shipped), "a file the router would not serve (unknown type)"
