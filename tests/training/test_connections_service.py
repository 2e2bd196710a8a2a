"""The connection service the HTTP routes call: saving, ownership, testing, live listing, read-only access."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy.engine import URL

from explorer_jobs.connections import service
from explorer_jobs.connections.models import ConnectionCreate
from explorer_jobs.connections.target import TargetSpec, open_target
from explorer_jobs.errors import InvalidInput, NotFound, RetryableJobError, TargetTimeout, TargetUnavailable
from explorer_jobs.settings import Settings
from explorer_jobs.store.schema_caches import latest_schema_cache
from explorer_jobs.training.payload import SchemaTrainingPayload
from explorer_jobs.training.processor import train_schema
from tests.support.databases import apply_settings
from tests.support.training_targets import (
    CANARY,
    MySQLTarget,
    add_mysql_connection,
    add_pg_connection,
    make_context,
)


def pg(**changes: object) -> ConnectionCreate:
    values: dict[str, object] = {
        "name": "Prod",
        "dialect": "postgresql",
        "host": "127.0.0.1",
        "database": "app",
        "username": "reader",
        "password": "pw",
    }
    values.update(changes)
    return ConnectionCreate.model_validate(values)


@pytest.fixture
def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_create_get_list_and_the_wire_shape(isolated_store: Settings) -> None:
    created = service.create_connection("alice", pg(trainingSchedule="0  3 * * 1"))
    wire = created.model_dump(mode="json", by_alias=True)
    assert set(wire) == {
        "id", "name", "dialect", "host", "port", "database", "username",
        "trainingSchedule", "createdAt", "lastTrainedAt",
    }  # fmt: skip
    assert (wire["port"], wire["trainingSchedule"], wire["lastTrainedAt"]) == (5432, "0 3 * * 1", None)
    assert wire["createdAt"].endswith("Z")
    assert service.get_connection("alice", created.id) == created
    assert service.list_connections("alice") == [created]
    assert service.list_connections("bob") == []


def test_another_users_connection_is_not_found_like_an_unknown_one(isolated_store: Settings) -> None:
    created = service.create_connection("alice", pg())
    calls = (
        service.get_connection,
        service.delete_connection,
        service.test_connection,
        service.list_schemas,
        service.get_schema_cache,
        service.delete_schema_cache,
    )
    for call in calls:
        with pytest.raises(NotFound) as other:
            call("bob", created.id)
        with pytest.raises(NotFound) as unknown:
            call("bob", "no-such-id")
        assert str(other.value) == str(unknown.value) == "connection not found"
    assert service.get_connection("alice", created.id) == created


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"trainingSchedule": "every day"}, "five-field cron"),
        ({"trainingSchedule": "0 0 2 * * 0"}, "five-field cron"),
        ({"trainingSchedule": "61 * * * *"}, "five-field cron"),
        ({"dialect": "oracle"}, "dialect"),
        ({"host": ""}, "host"),
        ({"port": 70000}, "port"),
        ({"username": ""}, "username"),
        ({"database": ""}, "database"),
        ({"passwd": "x"}, "Extra inputs"),
        ({"dialect": "sqlite", "database": "/tmp/x.db"}, "only `database`"),
    ],
)
def test_invalid_bodies_are_validation_errors(changes: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        pg(**changes)


def test_mysql_defaults_and_an_empty_schedule() -> None:
    body = pg(dialect="mysql", database="", trainingSchedule=" ")
    assert (body.port, body.training_schedule) == (3306, None)


def test_sqlite_only_where_allowed(
    isolated_store: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    body = ConnectionCreate(name="demo", dialect="sqlite", database=str(tmp_path / "demo.db"))
    apply_settings(monkeypatch, ALLOW_SQLITE_CONNECTIONS="false")
    with pytest.raises(InvalidInput, match="SQLite connections are not allowed"):
        service.create_connection("alice", body)
    apply_settings(monkeypatch, ALLOW_SQLITE_CONNECTIONS="true")
    created = service.create_connection("alice", body)
    assert (created.host, created.port, created.username) == ("", None, "")


async def test_delete_drops_the_schema_cache(isolated_store: Settings, pg_target: URL) -> None:
    connection_id = add_pg_connection("alice", pg_target)
    ctx, _ = make_context("alice")
    await train_schema(ctx, SchemaTrainingPayload(connection_id=connection_id, schemas=["sales"]))
    assert service.get_schema_cache("alice", connection_id)["version"] == 1
    service.delete_connection("alice", connection_id)
    assert latest_schema_cache(connection_id) is None
    with pytest.raises(NotFound):
        service.get_connection("alice", connection_id)


async def test_delete_schema_cache_then_it_is_not_found(isolated_store: Settings, pg_target: URL) -> None:
    connection_id = add_pg_connection("alice", pg_target)
    with pytest.raises(NotFound, match="no schema cache"):
        service.get_schema_cache("alice", connection_id)
    ctx, _ = make_context("alice")
    await train_schema(ctx, SchemaTrainingPayload(connection_id=connection_id, schemas=["sales"]))
    service.delete_schema_cache("alice", connection_id)
    with pytest.raises(NotFound, match="no schema cache"):
        service.get_schema_cache("alice", connection_id)


def test_test_connection_and_live_listing_on_postgresql(isolated_store: Settings, pg_target: URL) -> None:
    connection_id = add_pg_connection("alice", pg_target)
    answer = service.test_connection("alice", connection_id)
    assert answer.ok and answer.latency_ms > 0
    assert answer.model_dump(by_alias=True).keys() == {"ok", "latencyMs"}
    listing = [(s.name, s.tables) for s in service.list_schemas("alice", connection_id)]
    assert listing == [
        ("Odd Schema", ['it\'s a "table"']),
        ("public", ["CamelCase", "users"]),
        ("sales", ["orders", "shipments"]),
    ]


def test_live_listing_on_mariadb_shows_only_what_the_user_sees(
    isolated_store: Settings, mysql_target: MySQLTarget
) -> None:
    connection_id = add_mysql_connection("alice", mysql_target)
    a, b = mysql_target.databases
    listing = [(s.name, s.tables) for s in service.list_schemas("alice", connection_id)]
    assert listing == sorted([(a, ["Order Lines", "users"]), (b, ['It\'s "Quoted"'])])


def test_nothing_listening_is_a_clear_unavailable_error(isolated_store: Settings, free_port: int) -> None:
    created = service.create_connection("alice", pg(port=free_port, password=CANARY))
    with pytest.raises(
        TargetUnavailable, match=f"could not connect to 127.0.0.1:{free_port}: connection refused"
    ) as e:
        service.test_connection("alice", created.id)
    assert not isinstance(e.value, TargetTimeout) and CANARY not in str(e.value)


async def test_a_silent_server_times_out_and_training_retries(
    isolated_store: Settings, monkeypatch: pytest.MonkeyPatch, black_hole: int
) -> None:
    apply_settings(monkeypatch, TARGET_CONNECT_TIMEOUT_SECONDS="0.3")
    for dialect in ("postgresql", "mysql"):
        created = service.create_connection("alice", pg(dialect=dialect, port=black_hole))
        with pytest.raises(TargetTimeout, match=f"127.0.0.1:{black_hole} did not answer within 0.3 s"):
            service.test_connection("alice", created.id)
        ctx, _ = make_context("alice")
        with pytest.raises(RetryableJobError, match="did not answer"):
            await train_schema(ctx, SchemaTrainingPayload(connection_id=created.id))


@pytest.mark.parametrize(
    ("spec", "sleep"),
    [
        (
            TargetSpec("postgresql", "127.0.0.1", 5432, "postgres", "postgres", SecretStr("")),
            "SELECT pg_sleep(5)",
        ),
        (TargetSpec("mysql", "127.0.0.1", 3306, "test", "root", SecretStr("")), "SELECT SLEEP(5)"),
    ],
)
def test_sessions_are_read_only_with_a_statement_timeout(
    isolated_store: Settings, monkeypatch: pytest.MonkeyPatch, spec: TargetSpec, sleep: str
) -> None:
    apply_settings(monkeypatch, TARGET_STATEMENT_TIMEOUT_SECONDS="0.3")
    with open_target(spec) as session:
        with pytest.raises(TargetUnavailable, match=r"(?i)read.only transaction"):
            session.run(lambda conn, _i: conn.exec_driver_sql("CREATE TABLE ej_must_not_exist (x int)"))
        with pytest.raises(TargetTimeout, match=r"ran longer than 0\.3 s"):
            session.run(lambda conn, _i: conn.exec_driver_sql(sleep).all())
        assert session.run(lambda conn, _i: conn.exec_driver_sql("SELECT 1").scalar()) == 1


@pytest.mark.parametrize(
    "spec",
    [
        TargetSpec("postgresql", "127.0.0.1", 5432, "postgres", "postgres", SecretStr("")),
        TargetSpec("mysql", "127.0.0.1", 3306, "test", "root", SecretStr("")),
    ],
)
def test_a_query_may_outlast_the_connect_timeout(
    isolated_store: Settings, monkeypatch: pytest.MonkeyPatch, spec: TargetSpec
) -> None:
    apply_settings(monkeypatch, TARGET_CONNECT_TIMEOUT_SECONDS="0.2", TARGET_STATEMENT_TIMEOUT_SECONDS="5")
    sleep = "SELECT pg_sleep(0.5)" if spec.dialect == "postgresql" else "SELECT SLEEP(0.5)"
    with open_target(spec) as session:
        session.run(lambda conn, _i: conn.exec_driver_sql(sleep).all())


def test_sqlite_targets_open_read_only(isolated_store: Settings, tmp_path: Path) -> None:
    path = tmp_path / "odd name?#.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    created = service.create_connection(
        "alice", ConnectionCreate(name="f", dialect="sqlite", database=str(path))
    )
    assert [(s.name, s.tables) for s in service.list_schemas("alice", created.id)] == [("main", ["t"])]
    spec = service.load_target("alice", created.id)
    with (
        open_target(spec) as session,
        pytest.raises(TargetUnavailable, match=r"readonly|read-only|query_only"),
    ):
        session.run(lambda conn, _i: conn.exec_driver_sql("INSERT INTO t (name) VALUES ('x')"))


def test_a_missing_sqlite_file_is_unavailable(isolated_store: Settings, tmp_path: Path) -> None:
    created = service.create_connection(
        "alice", ConnectionCreate(name="f", dialect="sqlite", database=str(tmp_path / "absent.db"))
    )
    with pytest.raises(TargetUnavailable, match=r"absent\.db"):
        service.test_connection("alice", created.id)
