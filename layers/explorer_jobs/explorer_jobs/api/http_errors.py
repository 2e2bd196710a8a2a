"""The one table from errors to HTTP status codes, and the handlers that apply it.

Every error body is JSON with a `detail` field. Bad input is 4xx, never a 500: malformed JSON is 400,
a body over the limit 413, a failed validation 422.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import OperationalError as StoreOperationalError
from starlette.exceptions import HTTPException

from explorer_jobs.errors import (
    Conflict,
    ExplorerJobsError,
    InvalidInput,
    NotFound,
    RateLimited,
    TargetUnavailable,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger("explorer_jobs.api")

# Most specific first: the first class an error is an instance of decides its status.
STATUS_TABLE: tuple[tuple[type[BaseException], int], ...] = (
    (Unauthenticated, 401),
    (NotFound, 404),
    (Conflict, 409),  # IdempotencyConflict too
    (InvalidInput, 422),  # UnknownJobType too
    (RateLimited, 429),
    (TargetUnavailable, 502),
    (Unavailable, 503),
    (RedisConnectionError, 503),
    (RedisTimeoutError, 503),
    (StoreOperationalError, 503),  # the service's own database is down or unreachable
)

# What a client is told when Redis itself fails: the exception text may name hosts.
_UNAVAILABLE_DETAIL = "the job service is temporarily unavailable"


def status_for(exc: BaseException) -> int:
    """The HTTP status of an error (500 for anything the table does not name)."""
    for cls, status in STATUS_TABLE:
        if isinstance(exc, cls):
            return status
    return 500


def error_response(exc: BaseException) -> JSONResponse:
    """The JSON answer for an error raised by a route or a dependency."""
    status = status_for(exc)
    headers: dict[str, str] = {}
    detail = str(exc) if isinstance(exc, ExplorerJobsError) else _UNAVAILABLE_DETAIL
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    elif status == 503:
        headers["Retry-After"] = "1"
    if status >= 500:
        log.warning("answering %d: %s: %s", status, type(exc).__name__, exc)
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def _handle_known(request: Request, exc: Exception) -> JSONResponse:
    return error_response(exc)


async def _handle_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse({"detail": "the request body is not valid JSON"}, status_code=400)
    # Inputs are echoed back by default; a body may be large or hold what the user typed by mistake.
    cleaned = [{k: v for k, v in e.items() if k not in ("input", "url")} for e in errors]
    return JSONResponse({"detail": jsonable_encoder(cleaned)}, status_code=422)


async def _handle_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "internal error"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Route every error through the table above."""
    app.add_exception_handler(RequestValidationError, _handle_validation)
    app.add_exception_handler(HTTPException, _handle_http)
    app.add_exception_handler(ExplorerJobsError, _handle_known)
    app.add_exception_handler(RedisConnectionError, _handle_known)
    app.add_exception_handler(RedisTimeoutError, _handle_known)
    app.add_exception_handler(StoreOperationalError, _handle_known)
    app.add_exception_handler(Exception, _handle_unexpected)
