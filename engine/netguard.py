"""Outbound HTTP for nodes, behind an SSRF guard: only public addresses unless the operator allows more.

A workflow's author chooses the URLs its nodes call, so without a guard the HTTP Request node would
reach the machine's own services (databases, Redis, the cloud metadata endpoint at 169.254.169.254,
hosts on the private network). The guard sits where connections are made (httpcore's network
backend): it resolves the host once, refuses unless **every** address it resolves to is allowed, and
connects to the checked address itself — so a DNS answer that changes between check and connect
(DNS rebinding) cannot slip past it, and each redirect is a new connection, checked again. Nothing
is sent to, or even connected to, a refused address. Proxies from the environment are ignored (a
proxy would resolve the name itself, out of the guard's sight).

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

__all__ = ["AddressRefused", "is_public", "outbound_client", "parse_networks"]

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address
_NAT64 = IPv6Network("64:ff9b::/96")


class AddressRefused(httpx.RequestError):
    """A node asked for a host that resolves to an address it may not reach."""

    def __init__(self, host: str, address: str) -> None:
        shown = host if host == address else f"{host} ({address})"
        super().__init__(f"{shown} is not a public address")
        self.host, self.address = host, address


def parse_networks(value: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 127.0.0.1"`` → networks; a bad entry raises ``ValueError`` naming it."""
    networks = []
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        try:
            networks.append(ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"PATCHWIRE_HTTP_ALLOW_NETWORKS: {entry!r} is not an IP network (e.g. 10.0.0.0/8)") from None
    return tuple(networks)


def is_public(ip: Address) -> bool:
    """Globally reachable unicast: not private, loopback, link-local, CGNAT, reserved, multicast… (the IANA
    special-purpose registries, via ``ipaddress``); IPv4-mapped and NAT64 addresses are judged by their IPv4."""
    if isinstance(ip, IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public(ip.ipv4_mapped)
        if ip in _NAT64:
            return is_public(IPv4Address(ip.packed[-4:]))
    return ip.is_global and not ip.is_multicast


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the check in ``connect_tcp``; everything else is delegated."""

    def __init__(self, admit: Callable[[Address], bool], inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._admit = admit
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
                allowed = self._admit(ip_address(address))
            except ValueError:  # e.g. a scoped IPv6 address (fe80::1%eth0)
                allowed = False
            if not allowed:
                raise AddressRefused(host, address)
        return addresses

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        raise AddressRefused(path, path)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def outbound_client(allow: tuple[Network, ...] = (), **kwargs: Any) -> httpx.AsyncClient:
    """The ``httpx.AsyncClient`` nodes get as ``ctx.http``; ``kwargs`` go to the client."""

    def admit(ip: Address) -> bool:
        return is_public(ip) or any(ip in network for network in allow)

    transport = httpx.AsyncHTTPTransport()
    pool = transport._pool  # httpcore.AsyncConnectionPool: its backend is the one place connections are made
    assert hasattr(pool, "_network_backend"), "httpcore changed: the SSRF guard cannot attach"
    pool._network_backend = GuardedBackend(admit)
    kwargs.setdefault("follow_redirects", False)
    return httpx.AsyncClient(transport=transport, trust_env=False, **kwargs)
