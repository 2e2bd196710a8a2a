"""Read-only access to a user's database (the "target"): its URL, engine, and one guarded session.

Every target engine is built per use with NullPool (a user's database is not ours to hold
connections open on), connects to the address the host guard resolved, and bounds both the
connect and each statement. Sessions are read-only on the server side as well. A session whose
caller gives up on it mid-query (a job timeout) is ended by the server, not left running.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import SecretStr
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import URL
from sqlalchemy.engine.reflection import Inspector
from sqlalchemy.pool import NullPool

from explorer_jobs.connections.host_guard import resolve_allowed
from explorer_jobs.connections.target_errors import target_errors
from explorer_jobs.errors import HostNotAllowed, TargetUnavailable
from explorer_jobs.settings import get_settings

T = TypeVar("T")

log = logging.getLogger("explorer_jobs.target")

DRIVERS = {"postgresql": "postgresql+pg8000", "mysql": "mysql+pymysql", "sqlite": "sqlite+pysqlite"}
# A session's id on its server, read at open, and how a second session ends it, query and all.
SESSION_ID = {"postgresql": "SELECT pg_backend_pid()", "mysql": "SELECT CONNECTION_ID()"}
END_SESSION = {"postgresql": "SELECT pg_terminate_backend(%s)", "mysql": "KILL CONNECTION %s"}


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """Where a connection points, password decrypted. Internal: lives only for one connect."""

    dialect: str
    host: str
    port: int | None
    database: str
    username: str
    password: SecretStr  # its repr is '**********'

    @property
    def where(self) -> str:
        """The database's place for messages: `host:port`, or the SQLite file."""
        if self.dialect == "sqlite":
            return self.database
        return f"{self.host}:{self.port}"


def target_url(spec: TargetSpec, address: str | None) -> URL:
    """The SQLAlchemy URL for `spec`, connecting to `address` (the guard's resolved IP)."""
    if spec.dialect == "sqlite":
        # A file: URI opened read-only; as_uri() percent-encodes what the path holds.
        uri = Path(spec.database).expanduser().resolve().as_uri() + "?mode=ro"
        return URL.create(DRIVERS["sqlite"], database=uri, query={"uri": "true"})
    return URL.create(
        DRIVERS[spec.dialect],
        username=spec.username,
        password=spec.password.get_secret_value(),
        host=address,
        port=spec.port,
        database=spec.database or None,
        query={"charset": "utf8mb4"} if spec.dialect == "mysql" else {},
    )


def create_target_engine(spec: TargetSpec) -> Engine:
    """A NullPool engine for `spec`; raises `TargetUnavailable` when the host may not be reached."""
    settings = get_settings()
    connect_timeout = settings.TARGET_CONNECT_TIMEOUT_SECONDS
    statement_timeout = settings.TARGET_STATEMENT_TIMEOUT_SECONDS
    if spec.dialect == "sqlite":
        if not settings.ALLOW_SQLITE_CONNECTIONS:
            raise TargetUnavailable("SQLite connections are not allowed on this deployment")
        engine = create_engine(
            target_url(spec, None), poolclass=NullPool, connect_args={"timeout": connect_timeout}
        )
        event.listen(engine, "connect", _sqlite_read_only)
        return engine
    try:
        address = resolve_allowed(spec.host, spec.port or 0).address
    except HostNotAllowed as exc:
        raise TargetUnavailable(str(exc)) from None
    url = target_url(spec, address)
    if spec.dialect == "postgresql":
        engine = create_engine(
            url,
            poolclass=NullPool,
            hide_parameters=True,
            connect_args={
                "application_name": "db-explorer-jobs",
                # Sent in the startup packet: no extra round trip, and in force before any query.
                "startup_params": {
                    "default_transaction_read_only": "on",
                    "statement_timeout": str(int(statement_timeout * 1000)),
                },
            },
        )
        event.listen(
            engine, "do_connect", _pg_socket(address, spec.port or 5432, connect_timeout, statement_timeout)
        )
        return engine
    engine = create_engine(
        url,
        poolclass=NullPool,
        hide_parameters=True,
        connect_args={
            "connect_timeout": connect_timeout,
            # Bounds the wait for the server's greeting too; raised once connected (below).
            "read_timeout": connect_timeout,
            "write_timeout": connect_timeout,
            "init_command": "SET SESSION TRANSACTION READ ONLY",
        },
    )
    event.listen(engine, "connect", _mysql_session(statement_timeout, statement_timeout + connect_timeout))
    return engine


class TargetSession:
    """One read-only connection to a target and its inspector, used by one thread at a time.

    `run` may be called from different threads in turn (the processor hops through
    `asyncio.to_thread` between batches); a lock keeps `close` from racing a running call.
    Each call ends its transaction so no snapshot stays open on the user's database.
    `interrupt` is the one method that does not wait for the lock: it stops a running call.
    """

    def __init__(self, spec: TargetSpec) -> None:
        self.spec = spec
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._connection: Connection | None = None
        self._inspector: Inspector | None = None
        self._driver_connection: Any = None
        self._server_id: int | None = None

    def open(self) -> None:
        """Connect; `TargetUnavailable`/`TargetTimeout` with a readable reason when it cannot."""
        with self._lock, self._errors(get_settings().TARGET_CONNECT_TIMEOUT_SECONDS):
            self._engine = create_target_engine(self.spec)
            self._connection = self._engine.connect()
            self._driver_connection = self._connection.connection.dbapi_connection
            query = SESSION_ID.get(self.spec.dialect)
            if query is not None:
                self._server_id = int(self._connection.exec_driver_sql(query).scalar_one())
                self._connection.rollback()  # no snapshot held until the first call
            self._inspector = inspect(self._connection)

    def run(self, fn: Callable[[Connection, Inspector], T]) -> T:
        """Call `fn(connection, inspector)`, translating driver errors into `TargetUnavailable`."""
        with self._lock, self._errors(get_settings().TARGET_STATEMENT_TIMEOUT_SECONDS):
            if self._connection is None or self._inspector is None:
                raise RuntimeError("the target session is not open")
            try:
                return fn(self._connection, self._inspector)
            finally:
                self._connection.rollback()

    async def call(self, fn: Callable[[Connection, Inspector], T]) -> T:
        """`run(fn)` in a thread; when the awaiting task is cancelled meanwhile (a job timeout, a
        worker stopping), `interrupt` the session before the cancellation goes on."""
        try:
            return await asyncio.to_thread(self.run, fn)
        except asyncio.CancelledError:
            # The thread cannot be cancelled: left alone, its query would run on to the statement
            # timeout, and `close` (which waits for it) would hold the job's slot as long.
            await asyncio.to_thread(self.interrupt)
            raise

    def interrupt(self) -> None:
        """Stop a call that may be running in another thread: the server ends this session (from a
        second, short-lived connection to the same resolved address), and its socket is shut so the
        call returns now even if that failed. The session is of no further use; `close` it."""
        engine, server_id, driver_connection = self._engine, self._server_id, self._driver_connection
        if engine is None:
            return
        if server_id is not None:
            try:
                with self._errors(get_settings().TARGET_CONNECT_TIMEOUT_SECONDS), engine.connect() as other:
                    other.exec_driver_sql(END_SESSION[self.spec.dialect], (server_id,))
            except TargetUnavailable as exc:
                # Its query then runs on until the server's statement timeout ends it.
                log.warning("could not end a session on %s: %s", self.spec.where, exc)
        _shut_socket(driver_connection)

    def close(self) -> None:
        """Close the connection (waits for a running call to finish first)."""
        with self._lock:
            try:
                if self._connection is not None:
                    self._connection.close()
            except Exception:  # a broken connection is closed as far as we care
                pass
            finally:
                if self._engine is not None:
                    self._engine.dispose()
                self._connection = self._inspector = self._engine = self._driver_connection = None

    def _errors(self, timeout_seconds: float) -> AbstractContextManager[None]:
        return target_errors(self.spec.where, self.spec.password.get_secret_value(), timeout_seconds)


@contextmanager
def open_target(spec: TargetSpec) -> Iterator[TargetSession]:
    """An open `TargetSession` for the block, closed after it."""
    session = TargetSession(spec)
    try:
        session.open()
        yield session
    finally:
        session.close()


def _pg_socket(
    address: str, port: int, connect_timeout: float, statement_timeout: float
) -> Callable[..., Any]:
    # pg8000 has one timeout for connecting and for reading; open the socket ourselves so the
    # connect is bounded by the connect timeout and later reads outlast the server's own timeout.
    def do_connect(dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        sock = socket.create_connection((address, port), timeout=connect_timeout)
        try:
            # pg8000's connect() does not pass `sock` on; its Connection class (documented) takes it.
            connection = dialect.loaded_dbapi.Connection(*cargs, sock=sock, **cparams)
        except BaseException:
            sock.close()
            raise
        sock.settimeout(statement_timeout + connect_timeout)
        return connection

    return do_connect


def _mysql_session(statement_timeout: float, read_timeout: float) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # MariaDB and MySQL name this differently (seconds vs milliseconds); the handshake
            # already told us which one we talk to, so this costs no extra round trip to find out.
            if "mariadb" in dbapi_connection.get_server_info().lower():
                cursor.execute("SET SESSION max_statement_time = %s", (statement_timeout,))
            else:
                cursor.execute("SET SESSION max_execution_time = %s", (int(statement_timeout * 1000),))
        finally:
            cursor.close()
        # PyMySQL has one read timeout, for the greeting and for every later read. Connected now:
        # let reads outlast the server's own statement timeout, so the server cancels first.
        if hasattr(dbapi_connection, "_read_timeout"):
            dbapi_connection._read_timeout = read_timeout

    return on_connect


def _shut_socket(driver_connection: Any) -> None:
    # pg8000 and PyMySQL keep their socket under these names; shut down, a read blocked on it in
    # another thread returns at once (closing it would not wake that read).
    sock = getattr(driver_connection, "_usock", None) or getattr(driver_connection, "_sock", None)
    if isinstance(sock, socket.socket):
        with suppress(OSError):  # the server may have closed it already
            sock.shutdown(socket.SHUT_RDWR)


def _sqlite_read_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA query_only = ON")
    finally:
        cursor.close()
