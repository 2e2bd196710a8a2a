"""Path and header parameters read by hand, for a route that declares none (the enqueue hot path).

FastAPI resolves each declared parameter and dependency on every request; on the bench machine
that cost about 8-10 µs apiece, together more than the training route's own work (bench/README.md).
That route declares only its body and reads the rest here, with the checks FastAPI would have
made: the same pydantic constraints, a 422 with FastAPI's error list (`loc` starting with "path"
or "header"), and the same OpenAPI entries, given to the route as `openapi_extra`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import StringConstraints, TypeAdapter, ValidationError


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

    def read(self, request: Request) -> str | None:
        """The validated value, None when an optional header is absent; RequestValidationError
        (422) when it breaks the constraints."""
        raw = (
            request.path_params.get(self.name) if self.location == "path" else request.headers.get(self.name)
        )
        if raw is None and not self.required:
            return None
        try:
            return self._adapter.validate_python(raw)
        except ValidationError as exc:
            errors = [
                {**error, "loc": (self.location, self.name, *error["loc"])}
                for error in exc.errors(include_url=False)
            ]
            raise RequestValidationError(errors) from None

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
