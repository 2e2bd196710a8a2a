"""Whether a user owns a connection: the one place the job routes ask the connections store.

The store lives in `explorer_jobs.connections.service` (built separately). Until it is there, no
connection exists and `train-schema` answers 404. Routes take `ConnectionLookupDep`, so tests
can override `connection_lookup`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from importlib import import_module
from types import ModuleType
from typing import Annotated

from fastapi import Depends
from starlette.concurrency import run_in_threadpool

from explorer_jobs.errors import NotFound

SERVICE_MODULE = "explorer_jobs.connections.service"


def _service() -> ModuleType | None:
    try:
        return import_module(SERVICE_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name not in (SERVICE_MODULE, "explorer_jobs.connections"):
            raise
        return None


async def connection_exists(user_id: str, connection_id: str) -> None:
    """NotFound unless the connection exists and belongs to the user (the same answer for both)."""
    service = _service()
    get_connection = getattr(service, "get_connection", None)
    if get_connection is None:
        raise NotFound("connection not found")
    if inspect.iscoroutinefunction(get_connection):
        found = await get_connection(user_id=user_id, connection_id=connection_id)
    else:  # a sync store call must not block the loop
        found = await run_in_threadpool(get_connection, user_id=user_id, connection_id=connection_id)
    if found is None:
        raise NotFound("connection not found")


# `await lookup(user_id, connection_id)`: returns when the user owns it, else raises NotFound.
ConnectionLookup = Callable[[str, str], Awaitable[None]]


async def connection_lookup() -> ConnectionLookup:
    """The dependency behind `ConnectionLookupDep`; tests override it."""
    return connection_exists


ConnectionLookupDep = Annotated[ConnectionLookup, Depends(connection_lookup)]
