"""train-schema with the real connections store (SQLite) behind the lookup, no test double."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from explorer_jobs.api.clients import close_clients
from explorer_jobs.api.combined import create_combined_app
from explorer_jobs.connections.models import ConnectionCreate
from explorer_jobs.connections.service import create_connection
from explorer_jobs.settings import get_settings
from explorer_jobs.store.engine import dispose_engines
from explorer_jobs.store.migrate import upgrade_database

from .conftest import api_settings
from .support import auth


@pytest.fixture
async def store_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_env: None
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    monkeypatch.setenv("ALLOW_SQLITE_CONNECTIONS", "true")
    get_settings.cache_clear()
    upgrade_database()
    made = create_connection(
        "alice", ConnectionCreate(name="demo", dialect="sqlite", database=str(tmp_path / "t.db"))
    )
    app = create_combined_app()
    settings = api_settings()
    app.dependency_overrides[get_settings] = lambda: settings
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        yield client, made.id
    await close_clients()
    dispose_engines()


async def test_train_schema_looks_the_connection_up_in_the_store(
    store_client: tuple[httpx.AsyncClient, str],
) -> None:
    client, connection_id = store_client
    ok = await client.post(f"/api/connections/{connection_id}/train-schema", headers=auth("alice"))
    assert ok.status_code == 202
    foreign = await client.post(f"/api/connections/{connection_id}/train-schema", headers=auth("bob"))
    unknown = await client.post("/api/connections/no-such-id/train-schema", headers=auth("alice"))
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json() == unknown.json()
