"""A request's path parameters, headers and JSON body read by hand, for a route that declares
none (the enqueue hot path).

FastAPI resolves each declared parameter, body and dependency on every request; on the bench
machine that cost about 8-15 µs apiece, together more than the training route's own work
(bench/README.md). That route reads them here instead, with the checks FastAPI would have made: the
same pydantic validation, a 422 with FastAPI's error list (`loc` starting with "path", "header" or
"body"), and the same OpenAPI entries, given to the route as `openapi_extra` (and the body's
models added to the document's components by `document_hand_read_bodies`).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Generic, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import HTTPException, RequestValidationError
from pydantic import BaseModel, StringConstraints, TypeAdapter, ValidationError

Model = TypeVar("Model", bound=BaseModel)
COMPONENT_REF = "#/components/schemas/{model}"
# The models of every JsonBody, whose schemas the OpenAPI document must carry.
_BODY_MODELS: list[type[BaseModel]] = []


class StringParam:
    """A string path parameter or header with length limits and, optionally, a pattern."""

    def __init__(
        self,
        name: str,
        location: str,
        max_length: int,
        pattern: str | None = None,
        description: str | None = None,
    ) -> None:
        self.name = name
        self.location = location  # "path" or "header"
        self.max_length = max_length
        self.pattern = pattern
        self.description = description
        self._adapter: TypeAdapter[str] = TypeAdapter(
            Annotated[str, StringConstraints(min_length=1, max_length=max_length, pattern=pattern)]
        )

    @property
    def required(self) -> bool:
        return self.location == "path"

    def read(self, request: Request, errors: list[dict[str, Any]]) -> str | None:
        """The validated value, None when an optional header is absent or the value breaks the
        constraints: then its errors, as FastAPI lists them, are added to `errors`."""
        raw = (
            request.path_params.get(self.name) if self.location == "path" else request.headers.get(self.name)
        )
        if raw is None and not self.required:
            return None
        try:
            return self._adapter.validate_python(raw)
        except ValidationError as exc:
            errors += _located(exc, (self.location, self.name))
            return None

    def openapi(self) -> dict[str, Any]:
        """The parameter's OpenAPI entry, as FastAPI writes it for a declared parameter."""
        schema: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": self.max_length}
        if self.pattern is not None:
            schema["pattern"] = self.pattern
        if not self.required:
            schema = {"anyOf": [schema, {"type": "null"}]}
        if self.description:
            schema["description"] = self.description
        schema["title"] = self.name if self.location == "header" else self.name.title()
        entry: dict[str, Any] = {
            "name": self.name,
            "in": self.location,
            "required": self.required,
            "schema": schema,
        }
        if self.description:
            entry["description"] = self.description
        return entry


class JsonBody(Generic[Model]):
    """An optional JSON request body of one pydantic model, read as FastAPI reads a declared
    `body: Model | None = None`: parsed only under a JSON content type (`application/json` or
    `application/*+json`; anything else, or none, is validated as raw bytes and fails, as under
    FastAPI's strict content type); `null` or no body at all give None."""

    def __init__(self, model: type[Model]) -> None:
        self.model = model
        self._adapter: TypeAdapter[Model | None] = TypeAdapter(model | None)  # type: ignore[arg-type]
        _BODY_MODELS.append(model)

    async def read(self, request: Request, errors: list[dict[str, Any]]) -> Model | None:
        """The body, or None when there is none (or it is `null`) or it fails validation: then
        its errors are added to `errors`. Malformed JSON raises at once, as in FastAPI (400)."""
        raw = await request.body()
        if not raw:
            return None
        value: Any = raw
        if _is_json(request.headers.get("content-type")):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                error = {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error"}
                raise RequestValidationError([{**error, "input": {}, "ctx": {"error": exc.msg}}]) from exc
            except ValueError as exc:  # not text in any JSON encoding
                raise HTTPException(400, "There was an error parsing the body") from exc
        try:
            # As FastAPI validates a declared body: the parsed value, in Python mode.
            return self._adapter.validate_python(value, from_attributes=True)
        except ValidationError as exc:
            errors += _located(exc, ("body",))
            return None

    def openapi(self) -> dict[str, Any]:
        """The operation's `requestBody`, as FastAPI writes it for a declared optional body."""
        ref = {"$ref": COMPONENT_REF.format(model=self.model.__name__)}
        schema = {"anyOf": [ref, {"type": "null"}], "title": "Body"}
        return {"content": {"application/json": {"schema": schema}}}


def _located(exc: ValidationError, prefix: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{**error, "loc": (*prefix, *error["loc"])} for error in exc.errors(include_url=False)]


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    maintype, _, subtype = media_type.partition("/")
    return maintype == "application" and (subtype == "json" or subtype.endswith("+json"))


def document_hand_read_bodies(app: FastAPI) -> None:
    """Add the schemas of the JsonBody models the app's routes read to its OpenAPI components:
    FastAPI adds only the models of declared parameters, and these bodies are not declared."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        document = generate()
        operations = json.dumps(document.get("paths", {}))
        models = [m for m in _BODY_MODELS if COMPONENT_REF.format(model=m.__name__) in operations]
        if fresh and models:
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in _schemas_as_fastapi_writes_them(models).items():
                schemas.setdefault(name, schema)
            document["components"]["schemas"] = dict(sorted(schemas.items()))
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _schemas_as_fastapi_writes_them(models: list[type[BaseModel]]) -> dict[str, Any]:
    """The component schemas FastAPI writes for these models as declared bodies (it adjusts
    pydantic's output), taken from a scratch app that declares them."""
    scratch = FastAPI()
    for i, model in enumerate(models):

        async def endpoint(body: Any = None) -> None:
            return None

        endpoint.__annotations__ = {"body": model | None, "return": None}
        scratch.post(f"/{i}")(endpoint)
    written: dict[str, Any] = scratch.openapi()["components"]["schemas"]
    # Only the models and what they refer to (not the scratch app's own 422 schemas).
    wanted: dict[str, Any] = {}
    names = [model.__name__ for model in models]
    while names:
        name = names.pop()
        if name not in wanted:
            wanted[name] = written[name]
            names += re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(written[name]))
    return wanted
