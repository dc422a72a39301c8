"""The SSRF guard on nodes' outbound HTTP: public addresses only, unless the operator allows a network."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from typing import Any

import httpx
import pytest

from engine.netguard import AddressRefused, is_public, outbound_client, parse_networks
from engine.settings import load_settings

INTERNAL = ["127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
            "0.0.0.0", "224.0.0.1", "255.255.255.255", "198.18.0.1", "::1", "::", "fe80::1", "fc00::1",
            "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::7f00:1", "ff02::1"]
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
