"""Stream ids and the SSE wire format.

A user's events are entries of one Redis stream; an entry's id ("<ms>-<seq>") is the SSE `id:`.
Ids are compared as integer pairs, never as text ("10-0" > "9-0").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import NamedTuple

from explorer_jobs.errors import InvalidInput

_ID = re.compile(r"(\d{1,20})(?:-(\d{1,20}))?")
_UINT64_MAX = 2**64 - 1

COMMENT = b": ping\n\n"


class StreamId(NamedTuple):
    ms: int
    seq: int

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"


ZERO_ID = StreamId(0, 0)


def parse_stream_id(text: str) -> StreamId:
    """An id a client sent back (`Last-Event-ID`); InvalidInput (422) when it is not one of ours."""
    match = _ID.fullmatch(text.strip())
    if match is None:
        raise InvalidInput("Last-Event-ID is not an event id")
    ms, seq = int(match[1]), int(match[2] or 0)
    if ms > _UINT64_MAX or seq > _UINT64_MAX:
        raise InvalidInput("Last-Event-ID is not an event id")
    return StreamId(ms, seq)


def entry_id(text: str) -> StreamId:
    """The id of an entry Redis returned (always well formed)."""
    ms, _, seq = text.partition("-")
    return StreamId(int(ms), int(seq))


@dataclass(frozen=True, slots=True)
class Frame:
    """One event, encoded once and written as is to every client of its user."""

    id: StreamId
    data: bytes


def event_frame(raw_id: str, data: str) -> Frame:
    """The SSE frame of a stream entry whose field `d` holds the event JSON."""
    try:
        event_type = str(json.loads(data).get("type", "message"))
    except (ValueError, AttributeError):
        event_type = "message"
    if not event_type.isidentifier():  # the event name sits on one line of the frame
        event_type = "message"
    # JSON from the scripts has no raw newlines; split anyway so a stray one cannot end the frame.
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    text = f"event: {event_type}\nid: {raw_id}\n{lines}\n"
    return Frame(entry_id(raw_id), text.encode())


def opening_frame(retry_ms: int, last_id: StreamId) -> bytes:
    """The first message: the reconnect delay, and the position a reconnect replays from.

    An `id:` without `data:` dispatches no event but sets the client's Last-Event-ID, so a client
    that saw no event yet still resumes from where it connected.
    """
    return f"retry: {retry_ms}\nid: {last_id}\n\n".encode()
