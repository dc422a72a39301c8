"""Notices a node's panel shows up front about what will happen at run time.

Outbound requests go through the guarded client (``engine/netguard.py``), which refuses loopback, private and
other non-public addresses unless ``PATCHWIRE_HTTP_ALLOW_NETWORKS`` allows them. A URL field holding a literal
address of that kind (or ``localhost``) gets a notice naming the setting before anything runs. Expressions
(``{{ }}``) and host names are decided at run time (names are not resolved here: DNS may answer differently
then), so they get no notice.
"""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

from engine.netguard import Address, Network, refusal

URL_FIELDS = ("url",)
"""The config fields that name an address the node's requests go to (HTTP Request, HTTP poll, RSS)."""

SETTING = "PATCHWIRE_HTTP_ALLOW_NETWORKS"
LOCALHOST = ip_address("127.0.0.1")


def address_notices(config: dict[str, Any], allow: tuple[Network, ...]) -> dict[str, str]:
    """Field name → notice, for each URL field whose literal host the server would refuse."""
    notices = {}
    for field in URL_FIELDS:
        value = config.get(field)
        if isinstance(value, str) and (notice := address_notice(value, allow)):
            notices[field] = notice
    return notices


def address_notice(url: str, allow: tuple[Network, ...]) -> str | None:
    """Why requests to ``url`` will be refused at run time, naming the setting; ``None`` when they may go."""
    if "{{" in url or "{%" in url:
        return None
    host = _host(url)
    address = _literal_address(host) if host else None
    if address is None:
        return None
    why = refusal(address, allow)
    if why is None:
        return None
    return (f"{host} is not a public address ({why}): the server refuses requests to it when the node runs. "
            f"To reach it, the server's administrator adds its network to {SETTING}.")


def _host(url: str) -> str | None:
    try:
        return urlsplit(url.strip()).hostname
    except ValueError:  # a malformed URL: the field's own validation says so
        return None


def _literal_address(host: str) -> Address | None:
    if host == "localhost" or host.endswith(".localhost"):  # resolves to loopback (RFC 6761)
        return LOCALHOST
    try:
        return ip_address(host)
    except ValueError:
        return None
