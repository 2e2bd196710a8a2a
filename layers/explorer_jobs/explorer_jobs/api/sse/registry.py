"""The hub of the running event loop, created on the first stream request (no ASGI lifespan)."""

from __future__ import annotations

import asyncio

from explorer_jobs.api.sse import shutdown
from explorer_jobs.api.sse.hub import EventHub
from explorer_jobs.settings import Settings

_hubs: dict[tuple[int, int], tuple[Settings, EventHub]] = {}


def get_hub(settings: Settings) -> EventHub:
    """The process's hub for these settings on the running loop (a new one after a shutdown)."""
    loop = asyncio.get_running_loop()
    key = (id(loop), id(settings))
    entry = _hubs.get(key)
    if entry is None or entry[1].loop is not loop:
        for stale, (_, hub) in list(_hubs.items()):
            if hub.loop.is_closed():
                del _hubs[stale]
        entry = (settings, EventHub.create(settings))
        _hubs[key] = entry
        shutdown.watch(entry[1])
    return entry[1]


async def close_hubs() -> None:
    """Shut down and close the hubs of the running loop (a server's or a test's end)."""
    loop = asyncio.get_running_loop()
    for key, (_, hub) in list(_hubs.items()):
        if hub.loop is loop:
            del _hubs[key]
            await hub.aclose()
