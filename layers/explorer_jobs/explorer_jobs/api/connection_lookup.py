"""Whether a user owns a connection: the one place the job routes ask the connections store.

Routes take `ConnectionLookupDep`, so tests can override `connection_lookup`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends
from starlette.concurrency import run_in_threadpool

from explorer_jobs.connections.service import get_connection


async def connection_exists(user_id: str, connection_id: str) -> None:
    """NotFound unless the connection exists and belongs to the user (the same answer for both)."""
    # The store is synchronous (SQLAlchemy): it must not block the loop.
    await run_in_threadpool(get_connection, user_id, connection_id)


# `await lookup(user_id, connection_id)`: returns when the user owns it, else raises NotFound.
ConnectionLookup = Callable[[str, str], Awaitable[None]]


async def connection_lookup() -> ConnectionLookup:
    """The dependency behind `ConnectionLookupDep`; tests override it."""
    return connection_exists


ConnectionLookupDep = Annotated[ConnectionLookup, Depends(connection_lookup)]
