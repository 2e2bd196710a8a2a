"""The host guard: what a saved connection may connect to. Nothing here connects to a private address."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from explorer_jobs.connections import host_guard, service
from explorer_jobs.connections.host_guard import check_host_for_save, refusal, resolve_allowed
from explorer_jobs.connections.models import ConnectionCreate
from explorer_jobs.errors import HostNotAllowed, InvalidInput, PermanentJobError, TargetUnavailable
from explorer_jobs.settings import Settings
from explorer_jobs.training.payload import SchemaTrainingPayload
from explorer_jobs.training.processor import train_schema
from tests.support.databases import apply_settings
from tests.support.training_targets import make_context

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


def connection(host: str) -> ConnectionCreate:
    return ConnectionCreate(
        name="x", dialect="postgresql", host=host, database="d", username="u", password="p"
    )


@pytest.mark.parametrize("host", ["169.254.169.254", "[::ffff:169.254.169.254]", "fe80::1"])
def test_saving_a_metadata_host_is_invalid_input(isolated_store: Settings, host: str) -> None:
    with pytest.raises(InvalidInput, match="link-local or cloud metadata"):
        service.create_connection("alice", connection(host))
    assert service.list_connections("alice") == []


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "::ffff:127.0.0.1", "0.0.0.0", "10.0.0.1", "localhost"])
def test_private_hosts_are_refused_at_save_when_not_allowed(
    isolated_store: Settings, monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    apply_settings(monkeypatch, ALLOW_PRIVATE_HOSTS="false")
    with pytest.raises(HostNotAllowed):
        service.create_connection("alice", connection(host))


async def test_the_host_is_checked_again_at_connect_time(
    isolated_store: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Saved while private hosts were allowed (or while the name pointed elsewhere): refused now,
    # before any socket is opened to 10.0.0.1.
    saved = service.create_connection("alice", connection("10.0.0.1"))
    apply_settings(monkeypatch, ALLOW_PRIVATE_HOSTS="false")
    ctx, _ = make_context("alice")
    with pytest.raises(
        PermanentJobError, match=r"refusing to connect to 10\.0\.0\.1: it is a private address"
    ):
        await train_schema(ctx, SchemaTrainingPayload(connection_id=saved.id))
    with pytest.raises(TargetUnavailable, match="private address"):
        service.test_connection("alice", saved.id)
