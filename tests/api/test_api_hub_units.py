"""Small parts of the gateway, without a server: ids, frames, and a subscriber's bounded buffer."""

from __future__ import annotations

import pytest

from explorer_jobs.api.sse.hub import Subscriber
from explorer_jobs.api.sse.wire import StreamId, event_frame, opening_frame, parse_stream_id
from explorer_jobs.errors import InvalidInput


def test_ids_compare_as_numbers() -> None:
    assert parse_stream_id("10-0") > parse_stream_id("9-5")
    assert parse_stream_id("1700000000000") == StreamId(1700000000000, 0)
    assert str(parse_stream_id("5-7")) == "5-7"


@pytest.mark.parametrize("bad", ["", "abc", "1-2-3", "-1", "1-", "99999999999999999999999", "1 2"])
def test_bad_ids_are_invalid_input(bad: str) -> None:
    with pytest.raises(InvalidInput):
        parse_stream_id(bad)


def test_event_frame() -> None:
    frame = event_frame("5-1", '{"type":"job_queued","jobId":"j"}')
    assert frame.id == StreamId(5, 1)
    assert frame.data == b'event: job_queued\nid: 5-1\ndata: {"type":"job_queued","jobId":"j"}\n\n'
    assert event_frame("5-2", "not json").data.startswith(b"event: message\n")
    assert event_frame("5-3", '{"type":"a\\nb"}').data.startswith(b"event: message\n")


def test_opening_frame() -> None:
    assert opening_frame(3000, StreamId(7, 0)) == b"retry: 3000\nid: 7-0\n\n"


async def test_a_client_that_falls_behind_is_closed() -> None:
    sub = Subscriber("alice", StreamId(0, 0), limit=2)
    for seq in range(3):
        sub.offer(event_frame(f"1-{seq}", "{}"))
    assert sub.close_reason == "overflow" and sub.closed.is_set()
    frames = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
    assert [f.id.seq for f in frames if f is not None] == [0, 1] and frames[-1] is None
    sub.offer(event_frame("1-9", "{}"))  # nothing more is queued once closed
    assert sub.queue.empty()
