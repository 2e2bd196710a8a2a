"""Whether a user owns a connection: the one place the job routes ask the connections store.

The training route gets it through `lookup_for`, which honours an app's
`dependency_overrides[connection_lookup]`: tests swap the store out that way.

The enqueue route asks Redis first: the queue keeps each connection's owner (`conn:<id>`, filled
from the store on a miss, for `OWNER_TTL_SECONDS`), and the enqueue script checks it as its
precondition, so a training request for a known connection costs one round trip and no store
query. Deleting a connection through the API drops the key; a row deleted behind the API's back
is noticed by the training itself, which fails with "connection not found".
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import cast

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from explorer_jobs.connections.service import get_connection
from explorer_jobs.enqueueing import Precondition
from explorer_jobs.queue import Queue

OWNER_TTL_SECONDS = 600


async def connection_exists(user_id: str, connection_id: str) -> None:
    """NotFound unless the connection exists and belongs to the user (the same answer for both)."""
    # The store is synchronous (SQLAlchemy): it must not block the loop.
    await run_in_threadpool(get_connection, user_id, connection_id)


# `await lookup(user_id, connection_id)`: returns when the user owns it, else raises NotFound.
ConnectionLookup = Callable[[str, str], Awaitable[None]]


async def connection_lookup() -> ConnectionLookup:
    """The store's lookup, unless the app overrides this function (tests do)."""
    return connection_exists


async def lookup_for(request: Request) -> ConnectionLookup:
    """`connection_lookup` (or the app's override of it) for a route that resolves no dependencies."""
    provider = request.app.dependency_overrides.get(connection_lookup, connection_lookup)
    lookup = provider()
    return cast(ConnectionLookup, await lookup if inspect.isawaitable(lookup) else lookup)


def owned_by(queue: Queue, user_id: str, connection_id: str) -> Precondition:
    """The enqueue precondition "the cached owner of this connection is this user"."""
    return Precondition(queue.keys.connection_owner_suffix(connection_id), user_id)


async def remember_owner(queue: Queue, user_id: str, connection_id: str) -> None:
    """Cache what the store just said: the user owns the connection."""
    await queue.redis.set(queue.keys.connection_owner(connection_id), user_id, ex=OWNER_TTL_SECONDS)


async def forget_owner(queue: Queue, connection_id: str) -> None:
    await queue.redis.delete(queue.keys.connection_owner(connection_id))
