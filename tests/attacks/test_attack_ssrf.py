"""SSRF: which addresses a saved connection may reach, checked at save (a clear 422 through the API)
and again at connect, where a name that now resolves elsewhere (DNS rebinding) is caught and the
driver connects to the address that was checked. The API cases aim at this machine's PostgreSQL and
MariaDB on loopback: a missing check would show as a 200, not as a hang. Nothing connects to a
private address off this machine."""

from __future__ import annotations

import re
import socket
from ipaddress import ip_address
from typing import Any

import httpx
import pytest

from explorer_jobs.connections import host_guard
from explorer_jobs.connections.host_guard import check_host_for_save, refusal, resolve_allowed
from explorer_jobs.errors import HostNotAllowed, TargetUnavailable
from explorer_jobs.settings import Settings
from tests.api.support import auth
from tests.support.databases import apply_settings

from .support import run_job

ALWAYS_REFUSED = [
    "169.254.169.254",
    "::ffff:169.254.169.254",
    "::a9fe:a9fe",
    "fe80::1",
    "fd00:ec2::254",
    "100.100.100.200",
    "224.0.0.1",
]
PRIVATE = [
    "127.0.0.1",
    "::1",
    "::ffff:127.0.0.1",
    "0.0.0.0",
    "::",
    "10.0.0.1",
    "192.168.1.5",
    "172.16.0.9",
    "100.64.0.1",
    "fc00::1",
    "::7f00:1",
    "2002:7f00:1::1",
    "64:ff9b::a00:1",
    "240.0.0.1",
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"]


@pytest.mark.parametrize("address", ALWAYS_REFUSED)
@pytest.mark.parametrize("allow_private", [True, False])
def test_metadata_and_link_local_are_always_refused(address: str, allow_private: bool) -> None:
    assert refusal(ip_address(address), allow_private) is not None


@pytest.mark.parametrize("address", PRIVATE)
def test_private_addresses_depend_on_the_setting(address: str) -> None:
    assert refusal(ip_address(address), allow_private=True) is None
    assert refusal(ip_address(address), allow_private=False) is not None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal(ip_address(address), allow_private=False) is None


def test_the_reason_names_the_kind_of_address() -> None:
    assert refusal(ip_address("::ffff:127.0.0.1"), False) == "a loopback address"
    assert refusal(ip_address("0.0.0.0"), False) == "an unspecified address"
    assert refusal(ip_address("10.0.0.1"), False) == "a private address"
    assert refusal(ip_address("169.254.169.254"), True) == "a link-local or cloud metadata address"


def test_resolve_allowed_returns_the_address_to_connect_to() -> None:
    resolved = resolve_allowed("localhost", 5432, allow_private=True)
    assert resolved.name == "localhost"
    assert ip_address(resolved.address).is_loopback
    with pytest.raises(
        HostNotAllowed, match=r"refusing to connect to localhost \(.*\): it is a loopback address"
    ):
        resolve_allowed("localhost", 5432, allow_private=False)


def test_one_refused_answer_among_several_refuses_the_name(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [ip_address("93.184.216.34"), ip_address("169.254.169.254")]
    monkeypatch.setattr(host_guard, "resolve", lambda host, port: answers)
    with pytest.raises(HostNotAllowed, match="metadata"):
        resolve_allowed("rebinding.example", 5432, allow_private=True)


def test_an_unresolvable_name_is_unavailable_at_connect_and_accepted_at_save() -> None:
    with pytest.raises(TargetUnavailable, match="does not resolve"):
        resolve_allowed("no-such-host.invalid", 5432)
    check_host_for_save("no-such-host.invalid", 5432)


# What people write for loopback, unspecified, private and metadata hosts, in their many spellings.
LOOPBACK_AND_PRIVATE = [
    "127.0.0.1",
    "localhost",
    "LOCALHOST",
    "::1",
    "[::1]",
    "::ffff:127.0.0.1",
    "[::ffff:127.0.0.1]",
    "127.1",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "0.0.0.0",
    "0",
    "10.0.0.1",
]
METADATA = ["169.254.169.254", "[::ffff:169.254.169.254]", "fe80::1", "fd00:ec2::254"]
ATTACKER_NAME = "rebind.attacker.test"
PUBLIC_ANSWER = "93.184.216.34"


def body(host: str, dialect: str = "postgresql", port: int = 5432) -> dict[str, Any]:
    """A connection to `host`; the database is real where the host is this machine's loopback."""
    return {
        "name": "x",
        "dialect": dialect,
        "host": host,
        "port": port,
        "database": "postgres" if dialect == "postgresql" else "",
        "username": "postgres" if dialect == "postgresql" else "root",
        "password": "",
    }


async def saved_ids(http: httpx.AsyncClient) -> list[str]:
    return [c["id"] for c in (await http.get("/api/connections", headers=auth())).json()["connections"]]


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
@pytest.mark.parametrize("host", LOOPBACK_AND_PRIVATE + METADATA)
async def test_a_refused_host_is_a_clear_422_at_save(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, host: str, dialect: str
) -> None:
    apply_settings(monkeypatch, ALLOW_PRIVATE_HOSTS="false")
    answer = await http.post("/api/connections", json=body(host, dialect), headers=auth())
    assert answer.status_code == 422, answer.text
    assert re.fullmatch(r"refusing to connect to .+: it is an? [a-z -]+ address", answer.json()["detail"])
    assert await saved_ids(http) == []


@pytest.mark.parametrize("host", METADATA)
async def test_metadata_hosts_are_refused_even_where_private_ones_are_allowed(
    http: httpx.AsyncClient, host: str
) -> None:
    answer = await http.post("/api/connections", json=body(host), headers=auth())
    assert answer.status_code == 422 and "link-local or cloud metadata" in answer.json()["detail"]
    assert await saved_ids(http) == []


@pytest.mark.parametrize("host", LOOPBACK_AND_PRIVATE)
async def test_a_saved_host_is_refused_at_connect_once_disallowed(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    # Saved while private hosts were allowed; the loopback ones reach the real PostgreSQL, so only
    # the connect-time check stands between these requests and a 200.
    created = await http.post("/api/connections", json=body(host), headers=auth())
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    apply_settings(monkeypatch, ALLOW_PRIVATE_HOSTS="false")
    for answer in (
        await http.post(f"/api/connections/{cid}/test", headers=auth()),
        await http.get(f"/api/connections/{cid}/schemas", headers=auth()),
    ):
        assert answer.status_code == 502, answer.text
        assert answer.json()["detail"].startswith("refusing to connect to ")


async def test_a_training_is_refused_at_connect_time(
    http: httpx.AsyncClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real PostgreSQL listens there: without the check at connect time the training would succeed.
    created = await http.post("/api/connections", json=body("127.0.0.1"), headers=auth())
    apply_settings(monkeypatch, ALLOW_PRIVATE_HOSTS="false")
    queued = await http.post(f"/api/connections/{created.json()['id']}/train-schema", headers=auth())
    job_id = queued.json()["jobId"]
    assert await run_job(settings, "alice", job_id) == "job_failed"
    job = (await http.get(f"/api/jobs/{job_id}", headers=auth())).json()
    assert job["attempts"] == 1  # refused for good, not retried
    assert job["error"] == "refusing to connect to 127.0.0.1: it is a loopback address"


class Rebinder:
    """A resolver for ATTACKER_NAME that gives its scripted answers in turn (the last one for
    good); every other name resolves as usual. Counts the lookups of ATTACKER_NAME."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *answers: str) -> None:
        self.answers = list(answers)
        self.lookups = 0
        real = socket.getaddrinfo

        def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host != ATTACKER_NAME:
                return real(host, port, *args, **kwargs)
            self.lookups += 1
            address = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
            return real(address, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


async def test_a_name_rebound_to_loopback_after_saving_is_refused_at_connect(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply_settings(monkeypatch, ALLOW_PRIVATE_HOSTS="false")
    resolver = Rebinder(monkeypatch, PUBLIC_ANSWER, "127.0.0.1")
    created = await http.post("/api/connections", json=body(ATTACKER_NAME), headers=auth())
    assert created.status_code == 201, created.text  # a public address when saved
    tested = await http.post(f"/api/connections/{created.json()['id']}/test", headers=auth())
    assert tested.status_code == 502
    assert tested.json()["detail"] == (
        f"refusing to connect to {ATTACKER_NAME} (127.0.0.1): it is a loopback address"
    )
    assert resolver.lookups == 2


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
async def test_the_driver_connects_to_the_checked_address_not_a_fresh_lookup(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, dialect: str
) -> None:
    # The name answers loopback (allowed here, and where the real database listens) for the check,
    # then the metadata address. Had the driver looked the name up again, it would have gone there.
    apply_settings(monkeypatch, TARGET_CONNECT_TIMEOUT_SECONDS="2")
    port = 5432 if dialect == "postgresql" else 3306
    resolver = Rebinder(monkeypatch, "127.0.0.1")
    created = await http.post("/api/connections", json=body(ATTACKER_NAME, dialect, port), headers=auth())
    assert created.status_code == 201, created.text
    resolver.answers, resolver.lookups = ["127.0.0.1", "169.254.169.254"], 0
    first = await http.post(f"/api/connections/{created.json()['id']}/test", headers=auth())
    assert first.status_code == 200, first.text
    assert resolver.lookups == 1  # the guard's, and no other
    second = await http.post(f"/api/connections/{created.json()['id']}/test", headers=auth())
    assert second.status_code == 502
    assert "link-local or cloud metadata" in second.json()["detail"]
