"""The app factory every HTTP function uses."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI
from fastapi.telemetry import TelemetryConfig

from explorer_jobs import __version__
from explorer_jobs.api.body_limit import BodyLimitMiddleware
from explorer_jobs.api.http_errors import install_error_handlers
from explorer_jobs.api.lean_route import check_lean_routes
from explorer_jobs.api.request_params import document_hand_read_bodies
from explorer_jobs.settings import Settings, get_settings

# A body over this is refused with 413 before anything parses it.
MAX_BODY_BYTES = 1 << 20

# FastAPI's native OpenTelemetry, all of it off: it would otherwise look for a configured provider on
# every request (several µs each), and the functions report through Powertools.
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(
    routers: Sequence[APIRouter],
    *,
    title: str = "DB Explorer jobs",
    max_body_size: int = MAX_BODY_BYTES,
    settings: Settings | None = None,
) -> FastAPI:
    """An app serving `routers`, with the error table and the body-size limit installed.

    No lifespan: clients are created lazily on first use (`clients.py`), so the app runs the same
    under uvicorn and under Mangum with `lifespan="off"`. `settings` (default the process's) decide
    whether FastAPI's native OpenTelemetry is on (`OTEL_TELEMETRY`).
    """
    otel = (settings or get_settings()).OTEL_TELEMETRY
    # None keeps FastAPI's defaults: telemetry wherever a provider is configured.
    app = FastAPI(title=title, version=__version__, telemetry=None if otel else NO_TELEMETRY)
    app.add_middleware(BodyLimitMiddleware, max_body_size=max_body_size)
    install_error_handlers(app)
    for router in routers:
        app.include_router(router)
    check_lean_routes(app)
    document_hand_read_bodies(app)
    return app
