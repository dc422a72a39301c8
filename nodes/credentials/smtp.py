"""SMTP: a mail server's address and log-in. ``test`` connects (TLS / STARTTLS as set) and logs in.

The connection goes to an address judged by the same rules as the HTTP client's (engine/netguard.py): the
host is resolved once, every address checked, and the checked address connected to; TLS still verifies the
certificate against the host name.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from ipaddress import ip_address
from typing import Annotated, Any, Literal

import aiosmtplib
import msgspec

from engine.credentials.types import CredentialTestContext, CredentialType, OpenCredential
from engine.errors import CredentialError
from engine.netguard import parse_networks, refusal

Security = Literal["starttls", "tls", "none"]


class SmtpPublic(msgspec.Struct, forbid_unknown_fields=True):
    host: Annotated[str, msgspec.Meta(title="Host", description="e.g. smtp.example.com")]
    port: Annotated[int, msgspec.Meta(ge=1, le=65535, title="Port", description="587 for STARTTLS, 465 for TLS")] = 587
    security: Annotated[Security, msgspec.Meta(
        title="Security", description="starttls: upgrade after connecting; tls: TLS from the start; none: plain")] = \
        "starttls"
    username: Annotated[str, msgspec.Meta(title="Username", description="Leave empty for no log-in.")] = ""
    from_address: Annotated[str, msgspec.Meta(title="From", description="The sender address, e.g. me@example.com")] = ""

    def problems(self) -> dict[str, str]:
        problems = {}
        if not self.host.strip() or any(c in self.host for c in " /:@"):
            problems["host"] = "Enter a host name or address, without port or scheme."
        if self.from_address and "@" not in self.from_address:
            problems["from_address"] = "Enter an e-mail address."
        return problems


class SmtpSecret(msgspec.Struct, forbid_unknown_fields=True):
    password: Annotated[str, msgspec.Meta(title="Password")] = ""


class Smtp(CredentialType):
    """A mail server to send through."""

    type_name = "smtp"
    title = "SMTP"
    description = "A mail server's address and log-in, for sending e-mail."
    Public = SmtpPublic
    Secret = SmtpSecret

    async def test(self, ctx: CredentialTestContext, cred: OpenCredential) -> str:
        public = cred.public
        host, port, security = public["host"], int(public["port"]), public["security"]
        addresses = await checked_addresses(host, port, ctx.env.get("PATCHWIRE_HTTP_ALLOW_NETWORKS", ""))
        sock = await _connect(host, addresses, port, ctx.timeout)
        # the checked address's socket; ``hostname`` stays the name, for TLS (SNI and the certificate check).
        # From ``connect`` on, the socket belongs to the transport made on it: closing it here would cut a TLS
        # close short and leave that transport unclosed.
        client = aiosmtplib.SMTP(hostname=host, sock=sock, timeout=ctx.timeout, use_tls=security == "tls",
                                 start_tls=security == "starttls")
        try:
            await client.connect()
            if public.get("username"):
                await client.login(public["username"], cred.secret.get("password", ""))
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise CredentialError(f"{host} refused the log-in of {public['username']!r}: "
                                  f"{exc.code} {exc.message}") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise CredentialError(f"the mail server {host}:{port} failed: {_reason(exc)}") from None
        finally:
            await _quit(client)
        who = f" as {public['username']}" if public.get("username") else ""
        return f"Connected to {host}:{port} ({security}){who}"


async def _connect(host: str, addresses: list[str], port: int, timeout: float) -> socket.socket:
    """A connected socket to the first of the checked addresses that answers."""
    error: BaseException | None = None
    for address in addresses:
        sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (address, port)), timeout)
            return sock
        except (OSError, TimeoutError) as exc:
            sock.close()
            error = exc
    raise CredentialError(f"cannot reach the mail server {host}:{port}: {_reason(error)}")


async def checked_addresses(host: str, port: int, allow_setting: str) -> list[str]:
    """Resolve ``host``: its addresses, all allowed by the outbound rules (else ``CredentialError``)."""
    allow = parse_networks(allow_setting) if allow_setting else ()
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise CredentialError(f"cannot resolve the mail server {host}: {exc.strerror or exc}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        if why := refusal(ip_address(address), allow):
            raise CredentialError(f"{host} ({address}) is not a public address: {why}")
    if not addresses:
        raise CredentialError(f"the mail server {host} has no address")
    return addresses


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "no address answered"
    if isinstance(exc, TimeoutError | aiosmtplib.SMTPTimeoutError):
        return "timed out"
    text = getattr(exc, "message", None) or getattr(exc, "strerror", None) or str(exc)
    return str(text) or type(exc).__name__


async def _quit(client: Any) -> None:
    if client.is_connected:
        with contextlib.suppress(TimeoutError, aiosmtplib.SMTPException, OSError):  # closed below all the same
            await client.quit()
    client.close()
