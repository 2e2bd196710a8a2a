"""A user's saved connections: create, list, read, delete, test, the live schema listing and the
schema cache. Writes belong to the enqueue function, reads to the status function.

The store is synchronous (SQLAlchemy); its calls run in a worker thread so the loop never waits
on a database. A target database that cannot be reached is a 502 with a readable message.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from explorer_jobs.api.connection_lookup import forget_owner
from explorer_jobs.api.deps import QueueDep, UserDep
from explorer_jobs.api.openapi import CONNECTION_LINKS, error_responses, links
from explorer_jobs.connections import service
from explorer_jobs.connections.models import ConnectionCreate, ConnectionOut, ConnectionTest, SchemaListing
from explorer_jobs.models import WireModel

SCHEMA_TRAINING = "schema_training"

# Every route answers 401 without a valid token and 503 when Redis or the store is down.
_ALWAYS = error_responses(401, 503)
write_router = APIRouter(prefix="/api/connections", tags=["connections"], responses=_ALWAYS)
read_router = APIRouter(prefix="/api/connections", tags=["connections"], responses=_ALWAYS)

ConnectionId = Annotated[str, Path(alias="id", min_length=1, max_length=200)]


class ConnectionList(WireModel):
    connections: list[ConnectionOut]


class SchemaList(WireModel):
    schemas: list[SchemaListing] = Field(default_factory=list)


@write_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={201: links(CONNECTION_LINKS), **error_responses(400, 413, 422)},
)
async def create_connection(body: ConnectionCreate, user: UserDep) -> ConnectionOut:
    """Save a connection; nothing is connected to yet. The password is stored encrypted and never
    returned."""
    return await run_in_threadpool(service.create_connection, user.id, body)


@read_router.get("")
async def list_connections(user: UserDep) -> ConnectionList:
    """The caller's connections."""
    return ConnectionList(connections=await run_in_threadpool(service.list_connections, user.id))


@read_router.get("/{id}", responses={200: links(CONNECTION_LINKS), **error_responses(404, 422)})
async def get_connection(connection_id: ConnectionId, user: UserDep) -> ConnectionOut:
    return await run_in_threadpool(service.get_connection, user.id, connection_id)


@write_router.delete("/{id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404, 422))
async def delete_connection(connection_id: ConnectionId, user: UserDep, queue: QueueDep) -> Response:
    """Delete a connection: its queued and running trainings are cancelled, its cache dropped."""
    await run_in_threadpool(service.get_connection, user.id, connection_id)  # 404 before touching jobs
    await forget_owner(queue, connection_id)  # no new training from here on...
    await queue.cancel_matching(user.id, SCHEMA_TRAINING, "connectionId", connection_id)
    await run_in_threadpool(service.delete_connection, user.id, connection_id)
    # ...and none cached by a request that read the row between the first forget and the delete.
    await forget_owner(queue, connection_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@write_router.post("/{id}/test", responses=error_responses(404, 422, 502))
async def test_connection(connection_id: ConnectionId, user: UserDep) -> ConnectionTest:
    """Connect and run `SELECT 1`: `{ok, latencyMs}`, or 502 with the reason."""
    return await run_in_threadpool(service.test_connection, user.id, connection_id)


@read_router.get("/{id}/schemas", responses=error_responses(404, 422, 502))
async def list_schemas(connection_id: ConnectionId, user: UserDep) -> SchemaList:
    """The database's schemas and their tables, live, without system schemas."""
    return SchemaList(schemas=await run_in_threadpool(service.list_schemas, user.id, connection_id))


@read_router.get("/{id}/schema-cache", responses=error_responses(404, 422))
async def get_schema_cache(connection_id: ConnectionId, user: UserDep) -> dict[str, Any]:
    """The newest cached schema; 404 when the connection was never trained."""
    return await run_in_threadpool(service.get_schema_cache, user.id, connection_id)


@write_router.delete(
    "/{id}/schema-cache", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(404, 422)
)
async def delete_schema_cache(connection_id: ConnectionId, user: UserDep) -> Response:
    await run_in_threadpool(service.delete_schema_cache, user.id, connection_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
