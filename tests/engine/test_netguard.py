"""The SSRF guard on nodes' outbound HTTP: public addresses only, unless the operator allows a network."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.netguard import (
    EMBEDDINGS,
    REFUSED_NETWORKS,
    AddressRefused,
    GuardedBackend,
    embedded_ipv4,
    is_public,
    outbound_client,
    parse_networks,
    refusal,
)
from engine.settings import load_settings

INTERNAL = ["127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
            "0.0.0.0", "224.0.0.1", "255.255.255.255", "198.18.0.1", "::1", "::", "fe80::1", "fc00::1",
            "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::7f00:1", "ff02::1", "::127.0.0.1", "::a9fe:a9fe",
            "2002:7f00:1::", "2002:a00:1::1", "fec0::1", "2001:0:4136:e378:8000:63bf:80ff:fffe", "3fff::1",
            "64:ff9b:1::808:808", "5f00::1", "192.88.99.1", "::ffff:0:7f00:1"]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", INTERNAL)
def test_internal_addresses_are_not_public(address: str) -> None:
    assert not is_public(ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_public(address: str) -> None:
    assert is_public(ip_address(address))


def test_allowed_networks_are_parsed_and_bad_ones_named() -> None:
    assert [str(n) for n in parse_networks(" 10.0.0.0/8, 127.0.0.1 ,fd00::/8,")] == ["10.0.0.0/8", "127.0.0.1/32",
                                                                                     "fd00::/8"]
    with pytest.raises(ValueError, match="'intranet' is not an IP network"):
        parse_networks("10.0.0.0/8,intranet")


def test_the_setting_is_read_from_the_environment(tmp_path: Any) -> None:
    settings = load_settings({"PATCHWIRE_DATA_DIR": str(tmp_path), "PATCHWIRE_HTTP_ALLOW_NETWORKS": "10.0.0.0/8"})
    assert settings.http_allow_networks == "10.0.0.0/8"
    assert load_settings({"PATCHWIRE_DATA_DIR": str(tmp_path)}).http_allow_networks == "", "nothing allowed by default"


@pytest.fixture
def loopback_server() -> Iterator[tuple[str, list[str]]]:
    """``/hello`` answers 200; ``/away?to=URL`` redirects there. Records the paths it was asked for."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            if self.path.startswith("/away?to="):
                self.send_response(302)
                self.send_header("location", self.path.split("=", 1)[1])
                self.send_header("content-length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"hi")

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


async def test_loopback_is_refused_by_default_and_nothing_is_sent(loopback_server: tuple[str, list[str]]) -> None:
    url, seen = loopback_server
    port = url.rsplit(":", 1)[1]
    async with outbound_client() as http:
        for target in (f"{url}/hello", f"http://localhost:{port}/hello", f"http://[::ffff:127.0.0.1]:{port}/hello"):
            with pytest.raises(AddressRefused, match="not a public address") as refused:
                await http.get(target)
            assert not is_public(ip_address(refused.value.address))
    assert seen == []


async def test_an_allowed_network_is_reachable(loopback_server: tuple[str, list[str]]) -> None:
    url, seen = loopback_server
    async with outbound_client(parse_networks("127.0.0.1/32")) as http:
        response = await http.get(f"{url}/hello")
    assert (response.status_code, response.text, seen) == (200, "hi", ["/hello"])


async def test_every_redirect_hop_is_checked(loopback_server: tuple[str, list[str]]) -> None:
    url, seen = loopback_server
    async with outbound_client(parse_networks("127.0.0.1/32"), follow_redirects=True) as http:
        assert (await http.get(f"{url}/away?to={url}/hello")).text == "hi", "allowed → allowed is followed"
        with pytest.raises(AddressRefused, match="169.254.169.254"):
            await http.get(f"{url}/away?to=http://169.254.169.254/latest/meta-data/")
    assert seen == ["/away?to=" + f"{url}/hello", "/hello", "/away?to=http://169.254.169.254/latest/meta-data/"]


async def test_a_closed_internal_port_gives_the_same_answer_as_an_open_one() -> None:
    """Nothing is connected to before the check: no port-scan oracle."""
    async with outbound_client() as http:
        with pytest.raises(AddressRefused, match="localhost"):
            await http.get("http://localhost:9/")


async def test_the_refusal_is_an_httpx_error() -> None:
    """Code that handles ``httpx.HTTPError`` (every node) also handles a refusal."""
    async with outbound_client() as http:
        with pytest.raises(httpx.HTTPError):
            await http.get("http://169.254.169.254/")


# --- one table of refused networks, decided on the address a connection reaches ---------------------------

TEREDO_SERVER = IPv4Address("65.54.227.120")  # a public Teredo server
PUBLIC_V4 = IPv4Address("93.184.216.34")


def ipv6_forms(v4: IPv4Address) -> dict[str, IPv6Address]:
    """Every IPv6 spelling that carries ``v4`` (where the guard must look for it)."""
    n = int(v4)
    return {
        "IPv4-mapped": IPv6Address(0xFFFF << 32 | n),
        "IPv4-translated": IPv6Address(0xFFFF << 48 | n),
        "IPv4-compatible": IPv6Address(n),
        "NAT64": IPv6Address(0x64FF9B << 96 | n),
        "6to4": IPv6Address(0x2002 << 112 | n << 80 | 1),
        "Teredo client": IPv6Address(0x20010000 << 96 | int(TEREDO_SERVER) << 64 | (~n & 0xFFFFFFFF)),
        "Teredo server": IPv6Address(0x20010000 << 96 | n << 64 | (~int(PUBLIC_V4) & 0xFFFFFFFF)),
    }


def samples(network: Any) -> list[Any]:
    """The first, a middle and the last address of a network."""
    return [network[0], network[network.num_addresses // 2], network[-1]]


def first_row(address: Any) -> tuple[Any, str]:
    """The row that names the reason: the first one holding the address."""
    return next((net, why) for net, why in REFUSED_NETWORKS if net.version == address.version and address in net)


ROWS = [pytest.param(net, reason, id=str(net)) for net, reason in REFUSED_NETWORKS]


@pytest.mark.parametrize(("network", "reason"), ROWS)
def test_every_row_of_the_table_is_refused(network: Any, reason: str) -> None:
    for address in samples(network):
        why = refusal(address)
        assert why is not None, f"{address} in {network} ({reason}) was let through"
        if first_row(address)[0] == network and embedded_ipv4(address) is None:
            assert why == f"{reason}, {network}"
        assert not is_public(address)


@pytest.mark.parametrize(("network", "reason"), [row for row in ROWS if row.values[0].version == 4])
def test_every_ipv4_row_is_refused_through_every_ipv6_form_that_carries_it(network: Any, reason: str) -> None:
    for v4 in samples(network):
        for form, v6 in ipv6_forms(v4).items():
            why = refusal(v6)
            assert why is not None, f"{v6} ({form} of {v4}, {reason}) was let through"
            if int(v6) > 1:  # :: and ::1 are themselves, not IPv4-compatible forms
                assert why.endswith(f"form of {v4}, {first_row(v4)[1]}, {first_row(v4)[0]}"), why


@pytest.mark.parametrize(("network", "reason"), ROWS)
def test_an_allowed_network_is_admitted_itself_and_through_its_ipv6_forms(network: Any, reason: str) -> None:
    allow = (network,)
    for address in samples(network):
        assert refusal(address, allow) is None
        if address.version == 4:
            forms = ipv6_forms(address)
            carriers = [v6 for v6 in forms.values() if int(v6) > 1]  # :: and ::1 are judged as themselves
            assert all(refusal(v6, allow) is None for v6 in carriers), "decided on the embedded IPv4"
            if not network.supernet_of(ip_network("10.0.0.0/8")):
                assert refusal(forms["IPv4-mapped"], parse_networks("10.0.0.0/8")) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", str(PUBLIC_V4), "2606:4700:4700::1111",
                                     "2001:4860:4860::8888", "2001:3::1", *map(str, ipv6_forms(PUBLIC_V4).values())])
def test_public_addresses_and_their_ipv6_forms_are_reachable(address: str) -> None:
    assert refusal(ip_address(address)) is None


def test_the_table_is_documented_row_by_row() -> None:
    """docs/security.md shows the same table: every network with its reason."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    for network, reason in REFUSED_NETWORKS:
        assert f"| `{network}` | {reason} |" in doc, network
    for network, form, _ in EMBEDDINGS:
        assert f"`{network}`" in doc and form in doc


# Spellings of loopback / internal addresses that this machine's resolver (glibc getaddrinfo) accepts:
# the guard judges what the resolver returns, so every one of them must be refused.
SPELLINGS = ["127.0.0.1", "2130706433", "0177.0.0.1", "0x7f.1", "0x7f000001", "017700000001", "127.1", "127.0.1",
             "0x7F.0x0.0x0.0x1", "0177.1", "127.000.000.001", "127.0.0.01", "localhost", "LOCALHOST", "0", "0.0.0.0",
             "4294967295", "::1", "0:0:0:0:0:0:0:1", "0000:0000:0000:0000:0000:0000:0000:0001", "::1%1",
             "::ffff:127.0.0.1", "::FFFF:127.0.0.1", "::ffff:7f00:1", "::127.0.0.1", "::ffff:0:7f00:1",
             "64:ff9b::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::", "2002:a9fe:a9fe::1",
             "2001:0:4136:e378:8000:63bf:80ff:fffe", "fe80::1%1", "fe80::1%lo", "fec0::1", "::ffff:169.254.169.254",
             "::169.254.169.254", "::a9fe:a9fe", "64:ff9b::a9fe:a9fe", "::ffff:10.0.0.1", "::10.0.0.1"]


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_every_spelling_the_resolver_accepts_is_refused(spelling: str) -> None:
    resolved = {info[4][0] for info in socket.getaddrinfo(spelling, 80, type=socket.SOCK_STREAM)}
    assert resolved, f"the resolver no longer accepts {spelling!r}"
    backend = GuardedBackend(refusal)
    with pytest.raises(AddressRefused, match="is not a public address: ") as refused:
        await backend.connect_tcp(spelling, 9)
    assert refused.value.reason


URL_SPELLINGS = ["2130706433", "0x7f.1", "0x7f000001", "127.1", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]",
                 "[::127.0.0.1]", "[0:0:0:0:0:0:0:1]", "[0000:0000:0000:0000:0000:0000:0000:0001]",
                 "[64:ff9b::127.0.0.1]", "[2002:7f00:1::]", "[::FFFF:127.0.0.1]", "[::ffff:0:7f00:1]"]


async def test_urls_with_odd_spellings_of_loopback_send_nothing(loopback_server: tuple[str, list[str]]) -> None:
    """Through the client nodes get: each URL the URL parser lets through is refused before connecting."""
    url, seen = loopback_server
    port = url.rsplit(":", 1)[1]
    async with outbound_client() as http:
        for host in URL_SPELLINGS:
            with pytest.raises(AddressRefused, match="not a public address"):
                await http.get(f"http://{host}:{port}/hello")
    assert seen == []


async def test_an_allowed_ipv4_network_admits_its_ipv6_forms(loopback_server: tuple[str, list[str]]) -> None:
    url, seen = loopback_server
    port = url.rsplit(":", 1)[1]
    async with outbound_client(parse_networks("127.0.0.0/8")) as http:
        response = await http.get(f"http://[::ffff:127.0.0.1]:{port}/hello")
        with pytest.raises(AddressRefused, match="IPv4-compatible form of 169.254.169.254"):
            await http.get(f"http://[::169.254.169.254]:{port}/hello")
    assert (response.status_code, seen) == (200, ["/hello"])
