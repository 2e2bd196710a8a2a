"""Which addresses a saved connection may reach.

Metadata and link-local addresses are always refused (they hand out cloud credentials); loopback,
private, unspecified and other non-public addresses only where `ALLOW_PRIVATE_HOSTS` allows them
(the local default does). The host is checked at save time and again at connect time; at connect
time it is resolved once and the caller connects to that address, keeping the name only for display,
so a DNS answer that changes between the check and the connect (rebinding) cannot redirect it.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

from explorer_jobs.errors import HostNotAllowed, TargetUnavailable
from explorer_jobs.settings import get_settings

IPAddress = IPv4Address | IPv6Address

METADATA_NETWORKS = (
    ip_network("169.254.0.0/16"),  # link-local: AWS/GCP/Azure/OpenStack metadata live here
    ip_network("fe80::/10"),  # IPv6 link-local
    ip_network("fd00:ec2::254/128"),  # AWS metadata over IPv6
    ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
)
NAT64 = ip_network("64:ff9b::/96")


@dataclass(frozen=True, slots=True)
class ResolvedHost:
    """A host as the user wrote it (for display) and the address to connect to."""

    name: str
    address: str


def refusal(address: IPAddress, allow_private: bool) -> str | None:
    """Why `address` may not be connected to, or None when it may."""
    inner = _embedded_ipv4(address) if isinstance(address, IPv6Address) else None
    if inner is not None:
        return refusal(inner, allow_private)
    if any(address in network for network in METADATA_NETWORKS) or address.is_link_local:
        return "a link-local or cloud metadata address"
    if address.is_multicast:
        return "a multicast address"
    # Python counts a few reserved ranges as global (::/8 but for the compatible form, 240/4...).
    if allow_private or (address.is_global and not address.is_reserved):
        return None
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_private:
        return "a private address"
    return "a non-public address"


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, IPv4 and IPv6; `TargetUnavailable` when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        raise TargetUnavailable(f"the host name {host!r} does not resolve") from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = ip_address(str(info[4][0]))
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise TargetUnavailable(f"the host name {host!r} does not resolve")
    return addresses


def resolve_allowed(host: str, port: int, allow_private: bool | None = None) -> ResolvedHost:
    """Resolve `host` once and check every address it has; connect to the returned address.

    Raises `HostNotAllowed` when any address is refused (one bad answer among good ones is
    enough to refuse: the resolver may hand it out next time) and `TargetUnavailable` when the
    name does not resolve.
    """
    if allow_private is None:
        allow_private = get_settings().ALLOW_PRIVATE_HOSTS
    addresses = resolve(host, port)
    for address in addresses:
        reason = refusal(address, allow_private)
        if reason is not None:
            shown = host if host == str(address) else f"{host} ({address})"
            raise HostNotAllowed(f"refusing to connect to {shown}: it is {reason}")
    return ResolvedHost(name=host, address=str(addresses[0]))


def check_host_for_save(host: str, port: int) -> None:
    """The save-time check: `HostNotAllowed` for a refused address.

    A name that does not resolve yet is accepted (it may only resolve where the worker runs);
    the connect-time check judges it then.
    """
    try:
        resolve_allowed(host, port)
    except TargetUnavailable:
        return


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    # ::ffff:a.b.c.d, ::a.b.c.d (deprecated compatible form), 2002:aabb:ccdd::/48 (6to4) and
    # 64:ff9b::a.b.c.d (NAT64) can all reach an IPv4 host.
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64 or (int(address) >> 32 == 0 and int(address) > 1):
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None
