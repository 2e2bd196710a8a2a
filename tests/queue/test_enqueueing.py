"""The I/O-free half of an enqueue (`enqueueing`): what it sends in place of the generic helpers."""

from __future__ import annotations

import os
import uuid

import pytest

from explorer_jobs.enqueueing import EnqueueRequest, encode_request, new_job_id, request_fingerprint


def test_a_job_id_is_str_uuid4_of_the_same_random_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    for bits in (bytes(16), b"\xff" * 16, os.urandom(16)):
        monkeypatch.setattr(os, "urandom", lambda n, bits=bits: bits[:n])
        assert new_job_id() == str(uuid.UUID(bytes=bits, version=4))
    monkeypatch.undo()
    assert len({new_job_id() for _ in range(1000)}) == 1000


def test_the_fingerprint_is_sent_only_beside_an_idempotency_key() -> None:
    plain = encode_request(EnqueueRequest("test_echo", {"value": 1}, "u"))
    keyed = encode_request(EnqueueRequest("test_echo", {"value": 1}, "u", idempotency_key="k"))
    assert plain.args[11] == ""
    assert keyed.args[11] == request_fingerprint("test_echo", keyed.data, int(keyed.args[3]), 0)
