"""Turn a driver's failure into a message a person understands, without the password in it.

A timeout becomes `TargetTimeout` (worth retrying); anything else `TargetUnavailable`.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.exc import DBAPIError

from explorer_jobs.errors import TargetTimeout, TargetUnavailable

# Server-side "statement took too long": PostgreSQL SQLSTATE, MariaDB and MySQL error numbers.
_PG_TIMEOUT_CODES = frozenset({"57014"})
_MYSQL_TIMEOUT_CODES = frozenset({1969, 3024})
# "Lost connection during query" / "can't connect" from PyMySQL carry the socket's reason in text.
_MYSQL_NETWORK_CODES = frozenset({2003, 2006, 2013})


@contextmanager
def target_errors(where: str, password: str, timeout_seconds: float) -> Iterator[None]:
    """Re-raise driver and socket errors inside the block as `TargetUnavailable`/`TargetTimeout`.

    `where` names the database for the message (`host:port` or the SQLite file); `password` is
    scrubbed from whatever text the server sent back, in case a driver ever echoes it.
    """
    try:
        yield
    except (DBAPIError, OSError, UnicodeError) as exc:
        raise translate(exc, where, password, timeout_seconds) from None


def translate(exc: BaseException, where: str, password: str, timeout_seconds: float) -> TargetUnavailable:
    """The `TargetUnavailable` (or `TargetTimeout`) that explains `exc`."""
    chain = _chain(exc)
    if any(isinstance(e, TimeoutError) for e in chain):
        return TargetTimeout(f"{where} did not answer within {timeout_seconds:g} s")
    if any(isinstance(e, UnicodeEncodeError) for e in chain):
        # PyMySQL sends a password as latin-1. The error's text quotes the character: not repeated.
        return TargetUnavailable(
            f"could not connect to {where}: the driver cannot send the username or password "
            "(a character outside its encoding)"
        )
    if any(isinstance(e, UnicodeDecodeError) for e in chain):
        return TargetUnavailable(
            f"could not connect to {where}: its reply is in an encoding the driver cannot read"
        )
    code, text = _server_reason(chain)
    text = _scrub(text, password)
    if code in _PG_TIMEOUT_CODES or code in _MYSQL_TIMEOUT_CODES:
        return TargetTimeout(f"{where} cancelled a catalog query that ran longer than {timeout_seconds:g} s")
    if code in _MYSQL_NETWORK_CODES and "timed out" in text:
        return TargetTimeout(f"{where} did not answer within {timeout_seconds:g} s")
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return TargetUnavailable(
            f"could not connect to {where}: connection refused (is the database running?)"
        )
    os_error = next((e for e in chain if isinstance(e, OSError) and not isinstance(e, socket.gaierror)), None)
    if os_error is not None and os_error.strerror:
        return TargetUnavailable(f"could not connect to {where}: {os_error.strerror.lower()}")
    if text:
        return TargetUnavailable(f"{where} refused: {text}")
    return TargetUnavailable(f"could not connect to {where} ({type(exc).__name__})")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        if isinstance(current, DBAPIError) and current.orig is not None:
            current = current.orig
        else:
            current = current.__cause__ or current.__context__
    return seen


def _server_reason(chain: list[BaseException]) -> tuple[Any, str]:
    """(code, message) the server or driver gave, from pg8000's field dict or PyMySQL's (errno, msg)."""
    for error in chain:
        if isinstance(error, DBAPIError):
            continue
        args: tuple[Any, ...] = tuple(error.args)
        if args and isinstance(args[0], dict):  # pg8000: {'S': 'FATAL', 'C': '28P01', 'M': '...'}
            return args[0].get("C"), str(args[0].get("M", ""))
        if len(args) >= 2 and isinstance(args[0], int):  # PyMySQL: (1045, "Access denied ...")
            return args[0], str(args[1])
        if args and isinstance(args[0], str) and not isinstance(error, OSError):
            return None, args[0]
    return None, ""


def _scrub(text: str, password: str) -> str:
    return text.replace(password, "***") if password else text
