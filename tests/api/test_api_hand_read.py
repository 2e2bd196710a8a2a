"""The training route reads its path id, header and body by hand (api/request_params.py): its
answers must be the ones FastAPI gives for the same parameters declared, input for input."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Header, Path, Request
from fastapi.exceptions import RequestValidationError

from explorer_jobs.api.http_errors import install_error_handlers
from explorer_jobs.api.routes.enqueue import TRAIN_BODY, TRAIN_CONNECTION_ID, TRAIN_IDEMPOTENCY_KEY
from explorer_jobs.api.schemas import TrainSchemaRequest

ROUTE = "/api/connections/{id}/train-schema"


def declared_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post(ROUTE, status_code=202)
    async def declared(
        connection_id: Annotated[str, Path(alias="id", min_length=1, max_length=200)],
        idempotency_key: Annotated[
            str | None,
            Header(alias="Idempotency-Key", min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$"),
        ] = None,
        body: TrainSchemaRequest | None = None,
    ) -> dict[str, Any]:
        return echo(connection_id, idempotency_key, body)

    return app


def hand_read_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post(ROUTE, status_code=202)
    async def hand_read(request: Request) -> dict[str, Any]:
        errors: list[dict[str, Any]] = []
        connection_id = TRAIN_CONNECTION_ID.read(request, errors)
        idempotency_key = TRAIN_IDEMPOTENCY_KEY.read(request, errors)
        body = await TRAIN_BODY.read(request, errors)
        if errors:
            raise RequestValidationError(errors)
        return echo(connection_id, idempotency_key, body)

    return app


def echo(connection_id: str | None, key: str | None, body: TrainSchemaRequest | None) -> dict[str, Any]:
    return {"id": connection_id, "key": key, "body": body.model_dump() if body else None}


JSON = {"Content-Type": "application/json"}
CASES: list[tuple[str, dict[str, str], bytes | None]] = [
    ("c1", JSON, b'{"priority": 3}'),
    (
        "c1",
        JSON,
        b'{"schemas": ["public"], "tables": {"public": ["a", "b"]}, "options": {"includeTypes": false}}',
    ),
    ("c1", JSON, b"null"),
    ("c1", JSON, b""),
    ("c1", {}, None),
    ("c1", JSON, b"{}"),
    ("c1", JSON, b'{"priority": 0}'),
    ("c1", JSON, b'{"priority": "7"}'),
    ("c1", JSON, b'{"priority": 2.5}'),
    ("c1", JSON, b'{"priority": true}'),
    ("c1", JSON, b'{"colour": "red"}'),
    ("c1", JSON, b'{"schemas": "public"}'),
    ("c1", JSON, b'{"schemas": [""]}'),
    ("c1", JSON, b'{"tables": {"public": "users"}}'),
    ("c1", JSON, b'{"options": {"includeColor": true}}'),
    ("c1", JSON, b"[]"),
    ("c1", JSON, b'"x"'),
    ("c1", JSON, b"3"),
    ("c1", JSON, b'{"priority": '),
    ("c1", JSON, b"\xff\xfe"),
    ("c1", {"Content-Type": "application/json; charset=utf-8"}, b'{"priority": 4}'),
    ("c1", {"Content-Type": "application/merge-patch+json"}, b'{"priority": 4}'),
    ("c1", {"Content-Type": "APPLICATION/JSON"}, b'{"priority": 4}'),
    ("c1", {"Content-Type": "text/plain"}, b'{"priority": 4}'),
    ("c1", {"Content-Type": "application/xml"}, b"<priority>4</priority>"),
    ("c1", {}, b'{"priority": 4}'),
    ("c" * 200, JSON, b"{}"),
    ("c" * 201, JSON, b"{}"),
    ("c1", {**JSON, "Idempotency-Key": "k-1"}, b"{}"),
    ("c1", {**JSON, "Idempotency-Key": "x" * 201}, b"{}"),
    ("c1", {**JSON, "Idempotency-Key": "a b"}, b"{}"),
    ("c1", {**JSON, "Idempotency-Key": ""}, b"{}"),
    ("c" * 201, {**JSON, "Idempotency-Key": "a b"}, b'{"priority": 0}'),
]


@pytest.mark.parametrize(("connection_id", "headers", "content"), CASES)
async def test_hand_read_answers_as_declared_parameters_do(
    connection_id: str, headers: dict[str, str], content: bytes | None
) -> None:
    answers = []
    for app in (declared_app(), hand_read_app()):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
            response = await client.post(ROUTE.format(id=connection_id), headers=headers, content=content)
            answers.append((response.status_code, response.json()))
    declared, hand_read = answers
    assert hand_read == declared
