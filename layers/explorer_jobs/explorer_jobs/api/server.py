"""Serving an app under uvicorn so that Ctrl-C and SIGTERM end open event streams within seconds."""

from __future__ import annotations

import socket

import uvicorn

from explorer_jobs.api.clients import close_clients
from explorer_jobs.api.sse.registry import close_hubs
from explorer_jobs.api.sse.shutdown import notify_shutdown

# uvicorn's backstop: tasks still running this long after the stop are cancelled.
GRACEFUL_SHUTDOWN_SECONDS = 5


class GracefulServer(uvicorn.Server):
    """A uvicorn server that tells the event gateway as soon as it is asked to exit.

    uvicorn waits for open connections before stopping, and an event stream never closes on its own:
    setting `should_exit` (its signal handler does; so may a test) ends the streams first.
    """

    @property  # type: ignore[override]
    def should_exit(self) -> bool:
        return self._should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._should_exit = value
        if value:
            notify_shutdown()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        # No lifespan (the functions run without one): the lazy clients are closed here instead.
        await close_hubs()
        await close_clients()


def make_server(app: object, host: str = "127.0.0.1", port: int = 8000, **options: object) -> GracefulServer:
    """A `GracefulServer` for `app` (an ASGI app or an import string)."""
    options.setdefault("timeout_graceful_shutdown", GRACEFUL_SHUTDOWN_SECONDS)
    options.setdefault("log_level", "info")
    config = uvicorn.Config(app, host=host, port=port, **options)  # type: ignore[arg-type]
    return GracefulServer(config)
