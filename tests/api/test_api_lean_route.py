"""The training route is served by LeanRoute (api/lean_route.py), without FastAPI's per-request
handler: what it answers must not change (the 405 for other methods, the app's error bodies), what
LeanRoute would skip must be refused when declared, and FastAPI's native OpenTelemetry stays off
unless `OTEL_TELEMETRY` turns it on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import fastapi.routing
import fastapi.telemetry._asgi
import httpx
import pytest
from fastapi import APIRouter, Body, Depends, FastAPI, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from opentelemetry.trace import NoOpTracer, Tracer, TracerProvider
from redis.exceptions import ConnectionError as RedisConnectionError
from starlette.exceptions import HTTPException

from explorer_jobs.api.app import create_app
from explorer_jobs.api.lean_route import LeanRoute, LeanRouteError
from explorer_jobs.api.routes import enqueue
from explorer_jobs.errors import Conflict, NotFound, RateLimited, Unauthenticated
from explorer_jobs.settings import Settings, get_settings

from .conftest import api_settings
from .support import auth, free_port, make_app

ROUTE = "/api/connections/{id}/train-schema"
TRAIN = ROUTE.format(id="c1")


def client_of(app: FastAPI) -> httpx.AsyncClient:
    # Unhandled errors answered by ServerErrorMiddleware come back as answers, not raised here.
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def answer(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    return response.status_code, sorted(response.headers.multi_items()), response.content


class Calls:
    """Counts the calls of the function it replaces, and makes them."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.count = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.count += 1
        return self.function(*args, **kwargs)


@pytest.fixture
def solved(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """The calls of FastAPI's `solve_dependencies`: every request its per-request handler serves."""
    calls = Calls(fastapi.routing.solve_dependencies)
    monkeypatch.setattr(fastapi.routing, "solve_dependencies", calls)
    return calls


# The training route.


def test_the_training_route_is_a_lean_route() -> None:
    [route] = [r for r in enqueue.router.routes if getattr(r, "path", None) == ROUTE]
    assert type(route) is LeanRoute


async def test_the_training_route_skips_fastapis_handler(client: httpx.AsyncClient, solved: Calls) -> None:
    response = await client.post(TRAIN, json={"priority": 3}, headers=auth())
    assert response.status_code == 202
    assert solved.count == 0
    # The spy does see a route served by FastAPI's handler.
    assert (await client.get("/api/jobs", headers=auth())).status_code == 200
    assert solved.count > 0


def declared_training_app() -> FastAPI:
    """The training route declared the FastAPI way, on a plain APIRoute, in an app made alike."""
    router = APIRouter(prefix="/api", tags=["jobs"])

    @router.post("/connections/{id}/train-schema", status_code=202)
    async def declared(id: str, body: Annotated[dict[str, Any] | None, Body()] = None) -> dict[str, Any]:
        return {}

    return create_app([router], settings=api_settings())


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
async def test_other_methods_answer_as_on_a_plain_api_route(method: str) -> None:
    answers = []
    for app in (declared_training_app(), make_app(api_settings(), {("alice", "c1")})):
        async with client_of(app) as client:
            answers.append(answer(await client.request(method, TRAIN, headers=auth())))
    declared, lean = answers
    assert lean == declared
    status, headers, _ = lean
    assert status == 405 and ("allow", "POST") in headers


async def test_the_training_routes_errors_reach_the_app_handlers() -> None:
    app = make_app(api_settings(), {("alice", "c1")})
    async with client_of(app) as client:
        unknown = await client.post(ROUTE.format(id="nope"), headers=auth())
        assert (unknown.status_code, unknown.json()) == (404, {"detail": "connection not found"})
        invalid = await client.post(TRAIN, json={"priority": 0}, headers=auth())
        assert invalid.status_code == 422
        assert [error["loc"] for error in invalid.json()["detail"]] == [["body", "priority"]]
        keyed = {**auth(), "Idempotency-Key": "k-1"}
        assert (await client.post(TRAIN, json={"priority": 1}, headers=keyed)).status_code == 202
        conflict = await client.post(TRAIN, json={"priority": 2}, headers=keyed)
        assert conflict.status_code == 409 and conflict.json().keys() == {"detail"}
        anonymous = await client.post(TRAIN)
        assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"


async def test_the_training_route_is_503_when_redis_is_down() -> None:
    app = make_app(api_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"), {("alice", "c1")})
    async with client_of(app) as client:
        response = await client.post(TRAIN, headers=auth())
    assert response.status_code == 503
    assert response.json() == {"detail": "the job service is temporarily unavailable"}
    assert response.headers["retry-after"] == "1"


# Errors raised by a LeanRoute endpoint: the same answers as from an APIRoute, through the same handlers.

RAISED: dict[str, tuple[Callable[[], Exception], int]] = {
    "not-found": (lambda: NotFound("connection not found"), 404),
    "conflict": (lambda: Conflict("the job is not failed"), 409),
    "invalid": (lambda: RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "x"}]), 422),
    "malformed": (lambda: RequestValidationError([{"type": "json_invalid", "loc": ("body", 1)}]), 400),
    "http": (lambda: HTTPException(413, "too large"), 413),
    "unauthenticated": (lambda: Unauthenticated("no token"), 401),
    "rate-limited": (lambda: RateLimited("slow down", retry_after=7), 429),
    "redis-down": (lambda: RedisConnectionError("redis:6379 refused"), 503),
    "unexpected": (lambda: RuntimeError("boom"), 500),
}


async def raising_endpoint(request: Request) -> Response:
    make, _ = RAISED[request.path_params["case"]]
    raise make()


def raising_app(route_class: type[APIRoute]) -> FastAPI:
    router = APIRouter()
    router.add_api_route(
        "/cases/{case}", raising_endpoint, methods=["POST"], route_class_override=route_class
    )
    return create_app([router], settings=api_settings())


@pytest.mark.parametrize("case", RAISED)
async def test_an_error_from_a_lean_endpoint_is_answered_as_from_an_api_route(case: str) -> None:
    answers = []
    for route_class in (APIRoute, LeanRoute):
        async with client_of(raising_app(route_class)) as client:
            answers.append(answer(await client.post(f"/cases/{case}")))
    declared, lean = answers
    assert lean == declared
    status, headers, body = lean
    assert status == RAISED[case][1] and ("content-type", "application/json") in headers
    assert body.startswith(b'{"detail":')


# What LeanRoute would skip is refused when the route is declared.


async def ok(request: Request) -> Response:
    return Response(b"ok")


async def json_ok(request: Request) -> JSONResponse:
    return JSONResponse({})


def sync_endpoint(request: Request) -> Response:
    return Response(b"ok")


async def with_dependency(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> Response:
    return Response(b"ok")


async def with_query(request: Request, q: str) -> Response:
    return Response(q)


async def with_path(request: Request, id: str) -> Response:
    return Response(id)


async def with_header(request: Request, key: Annotated[str, Header(alias="X-Key")]) -> Response:
    return Response(key)


async def with_body(request: Request, body: dict[str, int]) -> Response:
    return Response(b"ok")


async def without_request() -> Response:
    return Response(b"ok")


async def with_response_only(response: Response) -> Response:
    return response


async def returning_a_dict(request: Request) -> dict[str, str]:
    return {}


def declare(endpoint: Callable[..., Any], router: APIRouter | None = None, **options: Any) -> APIRouter:
    router = router or APIRouter()
    router.add_api_route("/x/{id}", endpoint, methods=["POST"], route_class_override=LeanRoute, **options)
    return router


@pytest.mark.parametrize("endpoint", [ok, json_ok])
def test_an_endpoint_of_the_request_alone_returning_a_response_is_accepted(
    endpoint: Callable[..., Any],
) -> None:
    [route] = declare(endpoint).routes
    assert type(route) is LeanRoute


@pytest.mark.parametrize(
    ("endpoint", "options", "refusal"),
    [
        (sync_endpoint, {}, "the endpoint is not an async function"),
        (with_dependency, {}, "it has dependencies"),
        (ok, {"dependencies": [Depends(get_settings)]}, "it has dependencies"),
        (with_query, {}, "it declares query parameters (q)"),
        (with_path, {}, "it declares path parameters (id)"),
        (with_header, {}, "it declares header parameters (X-Key)"),
        (with_body, {}, "it declares body parameters (body)"),
        (without_request, {}, "the endpoint must take one parameter, the Request"),
        (with_response_only, {}, "the endpoint must take one parameter, the Request"),
        (with_query, {}, "the endpoint must take one parameter, the Request"),
        (ok, {"max_body_size": 1024}, "it has a per-route max_body_size"),
        (returning_a_dict, {}, "the endpoint must be annotated to return a Response"),
    ],
)
def test_what_lean_route_would_skip_is_refused(
    endpoint: Callable[..., Any], options: dict[str, Any], refusal: str
) -> None:
    with pytest.raises(LeanRouteError) as refused:
        declare(endpoint, **options)
    assert refusal in str(refused.value)
    assert "/x/{id}" in str(refused.value) and endpoint.__qualname__ in str(refused.value)


@pytest.mark.parametrize(
    ("router", "refusal"),
    [
        (APIRouter(dependencies=[Depends(get_settings)]), "it has dependencies"),
        (APIRouter(max_body_size=1024), "it has a per-route max_body_size"),
    ],
)
def test_what_its_router_gives_a_lean_route_is_refused(router: APIRouter, refusal: str) -> None:
    with pytest.raises(LeanRouteError, match=refusal):
        declare(ok, router)


@pytest.mark.parametrize(
    ("inclusion", "refusal"),
    [
        ({"dependencies": [Depends(get_settings)]}, "its inclusion gives it dependencies"),
        ({"max_body_size": 1024}, "its inclusion gives it a max_body_size"),
    ],
)
def test_what_an_inclusion_gives_a_lean_route_is_refused_by_create_app(
    inclusion: dict[str, Any], refusal: str
) -> None:
    outer = APIRouter()
    outer.include_router(declare(ok), prefix="/api", **inclusion)
    with pytest.raises(LeanRouteError, match=refusal) as refused:
        create_app([outer], settings=api_settings())
    assert "/api/x/{id}" in str(refused.value)
    plain = APIRouter()
    plain.include_router(declare(ok), prefix="/api")
    create_app([plain], settings=api_settings())


# FastAPI's native OpenTelemetry.


@pytest.fixture
def provider_lookups(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """The times FastAPI asks whether an OpenTelemetry provider is configured."""
    calls = Calls(fastapi.telemetry._asgi._unconfigured)
    monkeypatch.setattr(fastapi.telemetry._asgi, "_unconfigured", calls)
    return calls


def lean_app(settings: Settings | None) -> FastAPI:
    return create_app([declare(ok)], settings=settings)


async def test_telemetry_off_by_default_never_looks_for_a_provider(provider_lookups: Calls) -> None:
    async with client_of(lean_app(api_settings())) as client:
        assert (await client.post("/x/1")).status_code == 200
    assert provider_lookups.count == 0


@pytest.mark.parametrize("from_environment", [False, True])
async def test_the_setting_keeps_fastapis_default_telemetry(
    provider_lookups: Calls, monkeypatch: pytest.MonkeyPatch, from_environment: bool
) -> None:
    if from_environment:  # create_app without settings reads the process's
        monkeypatch.setenv("OTEL_TELEMETRY", "true")
        get_settings.cache_clear()
    app = lean_app(None if from_environment else api_settings(OTEL_TELEMETRY=True))
    async with client_of(app) as client:
        assert (await client.post("/x/1")).status_code == 200
    assert provider_lookups.count > 0


class RecordingTracer(NoOpTracer):
    """Spans that record nothing but their names."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.names.append(name)
        return super().start_span(name, *args, **kwargs)

    def start_as_current_span(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self.names.append(name)
        return super().start_as_current_span(name, *args, **kwargs)


class RecordingProvider(TracerProvider):
    def __init__(self) -> None:
        self.tracer = RecordingTracer()

    def get_tracer(self, *args: Any, **kwargs: Any) -> Tracer:
        return self.tracer


async def test_a_traced_request_is_served_by_fastapis_handler(solved: Calls) -> None:
    # Its operation spans (dependencies, endpoint) are made by the handler LeanRoute otherwise skips.
    provider = RecordingProvider()
    app = FastAPI(telemetry={"tracer_provider": provider})
    app.include_router(declare(ok))
    async with client_of(app) as client:
        response = await client.post("/x/1")
    assert (response.status_code, response.content) == (200, b"ok")
    assert solved.count == 1
    assert provider.tracer.names[0] == "POST"
    assert {"fastapi.dependencies", "fastapi.endpoint"} <= set(provider.tracer.names)
