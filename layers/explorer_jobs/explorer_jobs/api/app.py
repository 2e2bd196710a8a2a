"""The app factory every HTTP function uses."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI

from explorer_jobs import __version__
from explorer_jobs.api.body_limit import BodyLimitMiddleware
from explorer_jobs.api.http_errors import install_error_handlers
from explorer_jobs.api.request_params import document_hand_read_bodies

# A body over this is refused with 413 before anything parses it.
MAX_BODY_BYTES = 1 << 20


def create_app(
    routers: Sequence[APIRouter], *, title: str = "DB Explorer jobs", max_body_size: int = MAX_BODY_BYTES
) -> FastAPI:
    """An app serving `routers`, with the error table and the body-size limit installed.

    No lifespan: clients are created lazily on first use (`clients.py`), so the app runs the same
    under uvicorn and under Mangum with `lifespan="off"`.
    """
    app = FastAPI(title=title, version=__version__)
    app.add_middleware(BodyLimitMiddleware, max_body_size=max_body_size)
    install_error_handlers(app)
    for router in routers:
        app.include_router(router)
    document_hand_read_bodies(app)
    return app
