"""Ending open event streams when the server stops.

uvicorn waits for open connections before it stops, and an event stream never ends on its own, so
the gateway must be told. Two ways in: `GracefulServer` (api/server.py) reports its `should_exit`,
and a plain `uvicorn` run (the Lambda Web Adapter's) has its SIGTERM/SIGINT handler chained.
"""

from __future__ import annotations

import signal
import threading
import weakref
from types import FrameType
from typing import Any

from explorer_jobs.api.sse.hub import EventHub

_hubs: weakref.WeakSet[EventHub] = weakref.WeakSet()
_chained = False


def watch(hub: EventHub) -> None:
    """Have `hub` shut down with the server."""
    _hubs.add(hub)
    _chain_uvicorn_signals()


def notify_shutdown() -> None:
    """The server is stopping: end every hub's streams (callable from any thread)."""
    for hub in list(_hubs):
        if not hub.loop.is_closed():
            hub.loop.call_soon_threadsafe(hub.shutdown)


def _is_uvicorn_handler(handler: Any) -> bool:
    owner = getattr(handler, "__self__", None)
    return type(owner).__module__.startswith("uvicorn") and getattr(handler, "__name__", "") == "handle_exit"


def _chain_uvicorn_signals() -> None:
    # Only uvicorn's own handlers are wrapped (not pytest's, not an unrelated host's), and only from
    # the main thread, where Python lets a handler be installed at all.
    global _chained
    if _chained or threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not _is_uvicorn_handler(previous):
            continue

        def chained(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
            notify_shutdown()
            previous(signum, frame)

        signal.signal(sig, chained)
        _chained = True
