"""What the OpenAPI document says beyond the routes' own types: the error answers each route gives,
and the links from an operation's answer to the operations that take its ids.

Documentation only: nothing here changes a request or an answer. The links let a client (or a
stateful fuzzer) follow a created connection to its reads and trainings, a queued job to its
reads, cancel and retry, and a ticket to the event stream.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from explorer_jobs.models import EventType, JobEvent


class ErrorBody(BaseModel):
    """Every error answer: `detail` is a message, or FastAPI's list for a failed validation."""

    detail: str | list[dict[str, Any]]


ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "the body is not valid JSON",
    401: "a missing, expired, malformed or wrongly signed token",
    404: "no such id for this caller (another user's answers the same)",
    409: "the job's state does not allow it, or the Idempotency-Key was used with another body",
    413: "the body is over 1 MiB",
    422: "invalid input",
    429: "too many requests; see Retry-After",
    502: "the connection's database cannot be reached",
    503: "Redis or the service's store is unavailable; see Retry-After",
}

# Inline rather than a `model`: FastAPI would file a model under the route's own media type, and the
# event stream's errors are JSON, not `text/event-stream`.
_ERROR_CONTENT = {"application/json": {"schema": ErrorBody.model_json_schema()}}


def _header(description: str, type_: str = "string") -> dict[str, Any]:
    return {"description": description, "required": True, "schema": {"type": type_}}


# Headers the error table always sets on these answers (`http_errors.error_response`).
_ERROR_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": _header("Bearer")},
    429: {"Retry-After": _header("seconds to wait", "integer")},
    503: {"Retry-After": _header("seconds to wait", "integer")},
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entries for these error statuses, each a JSON `{detail}`."""
    return {
        code: {
            "description": ERROR_DESCRIPTIONS[code],
            "content": _ERROR_CONTENT,
            **({"headers": _ERROR_HEADERS[code]} if code in _ERROR_HEADERS else {}),
        }
        for code in codes
    }


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `$defs` written in place: it is embedded where `#/$defs/...` means nothing."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        return [resolve(item) for item in node] if isinstance(node, list) else node

    result: dict[str, Any] = resolve(schema)
    return result


# Open API 3.1 reads the `schema` of an event stream as that of one event, as EventSource hands it
# over (3.2 calls it `itemSchema`); `data` is the event's JSON. The opening `retry:`/`id:` frame and
# the `: ping` comments dispatch no event.
STREAM_CONTENT: dict[str, Any] = {
    "text/event-stream": {
        "schema": {
            "type": "object",
            "required": ["event", "id", "data"],
            "properties": {
                "event": {"enum": [event.value for event in EventType]},
                "id": {"type": "string", "description": "opaque; send back as Last-Event-ID"},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": {
                        **_inlined(JobEvent.model_json_schema()),
                        "description": "the event: its type, job, status and progress",
                    },
                },
                "retry": {"type": "integer"},
            },
        }
    }
}


def _operation(method: str, path: str) -> str:
    # An operationRef by path and method, written as the OpenAPI specification's own example is.
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method.lower()


def _link(method: str, path: str, description: str, **parameters: str) -> dict[str, Any]:
    return {"operationRef": _operation(method, path), "parameters": parameters, "description": description}


_CONNECTION_ID = "$response.body#/id"
_JOB_ID = "$response.body#/jobId"

# From an answer that is a connection (`POST /api/connections`, `GET /api/connections/{id}`).
CONNECTION_LINKS: dict[str, Any] = {
    "GetConnection": _link("GET", "/api/connections/{id}", "read it", id=_CONNECTION_ID),
    "DeleteConnection": _link("DELETE", "/api/connections/{id}", "delete it", id=_CONNECTION_ID),
    "TestConnection": _link("POST", "/api/connections/{id}/test", "connect to it", id=_CONNECTION_ID),
    "ListSchemas": _link("GET", "/api/connections/{id}/schemas", "list its schemas", id=_CONNECTION_ID),
    "TrainSchema": _link("POST", "/api/connections/{id}/train-schema", "queue a training", id=_CONNECTION_ID),
    "GetSchemaCache": _link(
        "GET", "/api/connections/{id}/schema-cache", "read its cached schema", id=_CONNECTION_ID
    ),
    "DeleteSchemaCache": _link(
        "DELETE", "/api/connections/{id}/schema-cache", "drop its cached schema", id=_CONNECTION_ID
    ),
}

# From an answer that names a job (`jobId`): the 202 of train-schema, cancel and retry, a job read.
JOB_LINKS: dict[str, Any] = {
    "GetJob": _link("GET", "/api/jobs/{jobId}", "read the job", jobId=_JOB_ID),
    "CancelJob": _link("POST", "/api/jobs/{jobId}/cancel", "cancel the job", jobId=_JOB_ID),
    "RetryJob": _link("POST", "/api/jobs/{jobId}/retry", "queue the job again", jobId=_JOB_ID),
}

TICKET_LINKS: dict[str, Any] = {
    "OpenStream": _link(
        "GET",
        "/api/jobs/notifications/stream",
        "open the event stream with the ticket (and no Authorization header, as EventSource does)",
        ticket="$response.body#/ticket",
    ),
}


def links(named: dict[str, Any]) -> dict[str, Any]:
    """A `responses=` entry that adds these links to the route's success answer."""
    return {"links": named}


# The 202 of a queued training: where to read the job, and where to go from it.
JOB_ACCEPTED: dict[str, Any] = {
    "headers": {"Location": _header("the job, `/api/jobs/{jobId}`")},
    "links": JOB_LINKS,
}
