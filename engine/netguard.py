"""Outbound HTTP for nodes, behind an SSRF guard: only public addresses unless the operator allows more.

A workflow's author chooses the URLs its nodes call, so without a guard the HTTP Request node would
reach the machine's own services (databases, Redis, the cloud metadata endpoint at 169.254.169.254,
hosts on the private network). The guard sits where connections are made (httpcore's network
backend): it resolves the host once, refuses unless **every** address it resolves to is allowed, and
connects to the checked address itself — so a DNS answer that changes between check and connect
(DNS rebinding) cannot slip past it, and each redirect is a new connection, checked again. Nothing
is sent to, or even connected to, a refused address. Proxies from the environment are ignored (a
proxy would resolve the name itself, out of the guard's sight).

What "allowed" means is one table, ``REFUSED_NETWORKS`` (each network with its reason; shown in
docs/security.md), not ``ipaddress``'s ``is_global``, whose answer changes between Python releases and
calls ``::127.0.0.1`` or ``2002:7f00:1::`` global. An IPv6 address in a form that carries an IPv4 address
(``EMBEDDINGS``: mapped, translated, compatible, NAT64, 6to4, Teredo) reaches that IPv4 address, so it is
decided on it. The refusal names the row: ``localhost (127.0.0.1) is not a public address: loopback,
127.0.0.0/8``.

An operator who wants workflows to reach internal hosts names those networks in
``PATCHWIRE_HTTP_ALLOW_NETWORKS`` (comma-separated CIDRs, e.g. ``10.1.0.0/16``).

(Why not the ``httpx-secure`` package: it finds the address by opening a TCP probe connection to
the host, internal or not, before it checks it — a port-scan oracle for workflow authors.)
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any

import anyio
import httpcore
import httpx

__all__ = ["EMBEDDINGS", "REFUSED_NETWORKS", "AddressRefused", "embedded_ipv4", "is_public", "outbound_client",
           "parse_networks", "refusal"]

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address

REFUSED_NETWORKS: tuple[tuple[Network, str], ...] = tuple((ip_network(net), reason) for net, reason in (
    # IPv4 (IANA IPv4 special-purpose registry; first match names the reason)
    ("0.0.0.0/8", "\"this network\" (0.0.0.0 reaches the local host)"),
    ("10.0.0.0/8", "private network"),
    ("100.64.0.0/10", "shared address space (carrier-grade NAT; some clouds' metadata)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata at 169.254.169.254)"),
    ("172.16.0.0/12", "private network"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast"),
    ("192.168.0.0/16", "private network"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "limited broadcast"),
    ("240.0.0.0/4", "reserved"),
    # IPv6 (IANA IPv6 special-purpose registry and address space)
    ("::/128", "unspecified address (reaches the local host)"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "local-use IPv4/IPv6 translation (a site's own translator)"),
    ("100::/64", "discard-only"),
    ("2001:2::/48", "benchmarking"),
    ("2001:10::/28", "deprecated ORCHID"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment-routing identifiers"),
    ("fc00::/7", "unique-local (private network)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "deprecated site-local (private network)"),
    ("ff00::/8", "multicast"),
    # Everything outside global unicast (2000::/3) is reserved by the IETF. The IPv6 forms that embed an
    # IPv4 address (EMBEDDINGS, most of them inside ::/8) are decided on that IPv4 address before this.
    *((net, "reserved by the IETF (not global unicast)") for net in (
        "::/8", "100::/8", "200::/7", "400::/6", "800::/5", "1000::/4", "4000::/3", "6000::/3", "8000::/3",
        "a000::/3", "c000::/3", "e000::/4", "f000::/5", "f800::/6", "fe00::/9")),
))
"""Every network a node may not reach (unless ``PATCHWIRE_HTTP_ALLOW_NETWORKS`` names it), with the reason.
Rows are searched in order; ``docs/security.md`` shows this table."""


def _last32(ip: int) -> list[int]:
    return [ip & 0xFFFFFFFF]


def _sixtofour(ip: int) -> list[int]:
    return [(ip >> 80) & 0xFFFFFFFF]  # 2002:AABB:CCDD::/48


def _teredo(ip: int) -> list[int]:
    return [(ip >> 64) & 0xFFFFFFFF, ~ip & 0xFFFFFFFF]  # the Teredo server, and the client (stored inverted)


EMBEDDINGS: tuple[tuple[IPv6Network, str, Callable[[int], list[int]]], ...] = (
    (IPv6Network("::ffff:0:0/96"), "IPv4-mapped", _last32),
    (IPv6Network("::ffff:0:0:0/96"), "IPv4-translated", _last32),
    (IPv6Network("::/96"), "IPv4-compatible", _last32),
    (IPv6Network("64:ff9b::/96"), "NAT64", _last32),
    (IPv6Network("2002::/16"), "6to4", _sixtofour),
    (IPv6Network("2001::/32"), "Teredo", _teredo),
)
"""The IPv6 forms that carry an IPv4 address, and where it sits: a connection to one reaches that IPv4
address (through the dual stack, a translator or a relay), so the guard decides on it."""


class AddressRefused(httpx.RequestError):
    """A node asked for a host that resolves to an address it may not reach."""

    def __init__(self, host: str, address: str, reason: str = "") -> None:
        shown = host if host == address else f"{host} ({address})"
        super().__init__(f"{shown} is not a public address" + (f": {reason}" if reason else ""))
        self.host, self.address, self.reason = host, address, reason


def parse_networks(value: str, setting: str = "PATCHWIRE_HTTP_ALLOW_NETWORKS") -> tuple[Network, ...]:
    """``"10.0.0.0/8, 127.0.0.1"`` → networks; a bad entry raises ``ValueError`` naming it and ``setting``."""
    networks = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        try:
            networks.append(ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{setting}: {entry!r} is not an IP network (e.g. 10.0.0.0/8)") from None
    return tuple(networks)


def embedded_ipv4(ip: Address) -> tuple[str, list[IPv4Address]] | None:
    """``(form, addresses)`` when ``ip`` is an IPv6 form that carries IPv4 addresses, else ``None``.
    ``::`` and ``::1`` are not IPv4-compatible addresses (RFC 4291): they are judged as themselves."""
    if not isinstance(ip, IPv6Address) or int(ip) <= 1:
        return None
    for network, form, extract in EMBEDDINGS:
        if ip in network:
            return form, [IPv4Address(value) for value in extract(int(ip))]
    return None


def _refused_row(ip: Address) -> tuple[Network, str] | None:
    return next(((net, reason) for net, reason in REFUSED_NETWORKS if ip.version == net.version and ip in net), None)


def refusal(ip: Address, allow: tuple[Network, ...] = ()) -> str | None:
    """Why a connection to ``ip`` is refused, or ``None`` when it may go ahead. An address in an allowed
    network goes ahead; an IPv6 form that embeds IPv4 addresses is decided on each of them (allowed, or in
    no refused network); any other address is refused when it is in a row of ``REFUSED_NETWORKS``."""
    if any(ip in network for network in allow):
        return None
    if embedded := embedded_ipv4(ip):
        form, addresses = embedded
        for address in addresses:
            if why := refusal(address, allow):
                return f"{form} form of {address}, {why}"
        return None
    if row := _refused_row(ip):
        return f"{row[1]}, {row[0]}"
    return None


def is_public(ip: Address) -> bool:
    """In no refused network (``REFUSED_NETWORKS``), itself or through the IPv4 address it embeds."""
    return refusal(ip) is None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the check in ``connect_tcp``; everything else is delegated."""

    def __init__(self, refuse: Callable[[Address], str | None],
                 inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._refuse = refuse
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        addresses = await self._resolve(host, port, timeout)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                                     socket_options=socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        raise error or httpcore.ConnectError(f"{host} has no address")

    async def _resolve(self, host: str, port: int, timeout: float | None) -> list[str]:
        try:
            with anyio.fail_after(timeout):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        for address in addresses:
            try:
                why = self._refuse(ip_address(address))
            except ValueError:  # not an address ipaddress can read: never connected to
                why = "not an IP address"
            if why:
                raise AddressRefused(host, address, why)
        return addresses

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        raise AddressRefused(path, path, "a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def outbound_client(allow: tuple[Network, ...] = (), **kwargs: Any) -> httpx.AsyncClient:
    """The ``httpx.AsyncClient`` nodes get as ``ctx.http``; ``kwargs`` go to the client."""

    transport = httpx.AsyncHTTPTransport()
    pool = transport._pool  # httpcore.AsyncConnectionPool: its backend is the one place connections are made
    assert hasattr(pool, "_network_backend"), "httpcore changed: the SSRF guard cannot attach"
    pool._network_backend = GuardedBackend(lambda ip: refusal(ip, allow))
    kwargs.setdefault("follow_redirects", False)
    return httpx.AsyncClient(transport=transport, trust_env=False, **kwargs)
