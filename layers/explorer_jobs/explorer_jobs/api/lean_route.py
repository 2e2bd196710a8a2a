"""A route whose endpoint takes the Request alone and returns a Response, served without FastAPI's
per-request handler.

For every request FastAPI wraps a route's endpoint in `request_response` (two AsyncExitStacks and a
second exception-handling wrapper) and `get_request_handler` (body reading, `solve_dependencies`,
the endpoint context for error messages): about 15 µs of CPU on the bench machine, more than the
app's middleware and routing together. An endpoint that reads its own parameters (`request_params.py`)
and builds its own Response needs none of it, so `LeanRoute.handle` builds the Request, awaits the
endpoint and sends its Response.

Everything outside the route stays FastAPI's: the middleware, the routing, the OpenAPI entry (made
from the declaration as for any APIRoute) and the exception handlers. An exception the endpoint
raises reaches Starlette's ExceptionMiddleware, which calls the same app handlers, with the same
lookup, as the wrapper `request_response` would have put around the route; a 500 goes on to
ServerErrorMiddleware either way.

What is skipped is refused when the route is declared, rather than skipped silently: parameters and
dependencies FastAPI would resolve, a sync endpoint (it would run in the thread pool), a return
value FastAPI would serialize, and a per-route body limit. A request whose method the route does
not take, or one traced by FastAPI's native OpenTelemetry (whose operation spans live in the
skipped handler), is served by APIRoute's own path.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.utils import get_typed_return_annotation
from fastapi.exceptions import FastAPIError
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

LeanEndpoint = Callable[[Request], Awaitable[Response]]

# Set by FastAPI (to None when a request is excluded) only while its native telemetry is on.
_TELEMETRY_SCOPE_KEY = "fastapi.telemetry"


class LeanRouteError(FastAPIError):
    """A LeanRoute declared with something it would skip."""


class LeanRoute(APIRoute):
    """An APIRoute for `async def endpoint(request: Request) -> Response`, served directly."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        super().__init__(path, endpoint, **options)
        refusals = self._refusals()
        if refusals:
            raise LeanRouteError(_refused(path, endpoint, refusals))
        self._lean_endpoint: LeanEndpoint = endpoint
        self._lean_methods = frozenset(self.methods or ())  # APIRoute always has some (GET by default)

    def _refusals(self) -> list[str]:
        """What this declaration asks of FastAPI's per-request handler, which LeanRoute skips."""
        dependant = self.dependant
        refusals: list[str] = []
        if not inspect.iscoroutinefunction(self.endpoint):
            refusals.append("the endpoint is not an async function")
        parameters = inspect.signature(self.endpoint).parameters
        if len(parameters) != 1 or dependant.request_param_name is None:
            refusals.append("the endpoint must take one parameter, the Request")
        declared = {
            "path": dependant.path_params,
            "query": dependant.query_params,
            "header": dependant.header_params,
            "cookie": dependant.cookie_params,
            "body": dependant.body_params,
        }
        for location, fields in declared.items():
            if fields:
                names = ", ".join(field.alias for field in fields)
                refusals.append(f"it declares {location} parameters ({names})")
        if dependant.dependencies:  # the endpoint's own `Depends` and the route's `dependencies=`
            refusals.append("it has dependencies")
        if self.max_body_size is not None:
            refusals.append("it has a per-route max_body_size")
        returns = get_typed_return_annotation(self.endpoint)
        if not (inspect.isclass(returns) and issubclass(returns, Response)):
            refusals.append("the endpoint must be annotated to return a Response, which is sent as it is")
        return refusals

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in self._lean_methods or scope.get(_TELEMETRY_SCOPE_KEY) is not None:
            # FastAPI's own answer: the 405 with Allow, or the handler that records the spans.
            await super().handle(scope, receive, send)
            return
        request = Request(scope, receive, send)
        response = await self._lean_endpoint(request)
        await response(scope, receive, send)


def check_lean_routes(app: FastAPI) -> None:
    """Refuse a LeanRoute to which an `include_router` gave dependencies or a body limit.

    Those come with the inclusion, after the route was declared, so the route cannot see them
    itself. Walking the routes also builds FastAPI's included routes now rather than on the first
    request.
    """
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, LeanRoute):
            continue
        refusals: list[str] = []
        if route.dependencies:
            refusals.append("its inclusion gives it dependencies")
        if route.max_body_size is not None:
            refusals.append("its inclusion gives it a max_body_size")
        if refusals:
            lean_route = route.original_route
            raise LeanRouteError(_refused(route.path or lean_route.path, lean_route.endpoint, refusals))


def _refused(path: str, endpoint: Callable[..., Any], refusals: list[str]) -> str:
    name = getattr(endpoint, "__qualname__", repr(endpoint))
    return (
        f"LeanRoute {path} ({name}) calls its endpoint with the Request alone and sends the Response "
        f"it returns, skipping what FastAPI would do for this declaration: {'; '.join(refusals)}"
    )
