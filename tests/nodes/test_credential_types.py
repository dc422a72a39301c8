"""The registered credential types: their schemas, ``authorize`` for HTTP, and ``test`` against real local
servers — an aiosmtpd SMTP server with AUTH (plain and STARTTLS with a certificate made here) and a loopback
Telegram Bot API that answers ``getMe``."""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from engine.config import field_specs
from engine.credentials import CredentialTestContext, OpenCredential
from engine.errors import CredentialError, CredentialNeedsReconnect, RegistryError
from engine.netguard import outbound_client, parse_networks
from nodes.credentials import CREDENTIAL_TYPES, credential_registry
from nodes.credentials.smtp import Smtp
from nodes.credentials.telegram import TelegramBot

# aiosmtpd warns about AUTH without TLS: the plain server here is on loopback, for the AUTH exchange itself
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
LOOPBACK = "127.0.0.0/8,::1/128"
PASSWORD = "smtp-pass-0123456789"
BOT_TOKEN = "123456789:AAE-fake-token-for-the-loopback-api"


def cred(type_name: str, public: dict[str, Any] | None = None, secret: dict[str, Any] | None = None) -> OpenCredential:
    return OpenCredential(id=7, owner_id=1, type_name=type_name, name="test", public=public or {}, secret=secret or {})


def test_the_registry_holds_every_type_once_with_forms() -> None:
    registry = credential_registry()
    names = [t.type_name for t in registry.all()]
    assert len(names) == len(set(names)) == len(CREDENTIAL_TYPES)
    assert {"http_header", "http_bearer", "http_basic", "oauth2", "oauth2_client_credentials", "smtp",
            "telegram_bot"} <= set(names)
    for cls in registry:
        assert cls.title and field_specs(cls.Public) is not None and field_specs(cls.Secret) is not None
    with pytest.raises(RegistryError, match="registered twice"):
        registry.register(Smtp)
    with pytest.raises(RegistryError, match="unknown credential type 'nope'"):
        registry.get("nope")
    assert Smtp().has_test and TelegramBot().has_test and not registry.get("http_bearer")().has_test


def test_generic_types_authorize_a_request() -> None:
    registry = credential_registry()
    cases = [
        ("http_header", {"header_name": "X-API-Key"}, {"value": "k-1"}, {"X-API-Key": "k-1"}),
        ("http_bearer", {}, {"token": "t-1"}, {"Authorization": "Bearer t-1"}),
        ("http_basic", {"username": "ada"}, {"password": "pw"}, {"Authorization": "Basic YWRhOnB3"}),
        ("oauth2", {}, {"access_token": "at"}, {"Authorization": "Bearer at"}),
        ("oauth2_client_credentials", {}, {"access_token": "cc"}, {"Authorization": "Bearer cc"}),
    ]
    for type_name, public, secret, expected in cases:
        headers: dict[str, str] = {}
        registry.get(type_name)().authorize(cred(type_name, public, secret), headers, {})
        assert headers == expected, type_name
    with pytest.raises(CredentialNeedsReconnect, match="no access token yet"):
        registry.get("oauth2")().authorize(cred("oauth2", {}, {"client_secret": "x"}), {}, {})
    assert "k-1" not in repr(cred("http_header", {}, {"value": "k-1"}))


# ---- SMTP against aiosmtpd ------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Sink:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = getattr(auth_data, "login", b"") == b"alice" and getattr(auth_data, "password", b"") == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


def certificate(tmp: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` (and 127.0.0.1)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def smtp_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[int, Path | None]]:
    """An SMTP server on loopback requiring AUTH; with ``starttls`` it offers STARTTLS and requires it."""
    kwargs: dict[str, Any] = {"authenticator": authenticator, "auth_required": True}
    cert_path = None
    if getattr(request, "param", "plain") == "starttls":
        cert_path, key_path = certificate(tmp_path)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_path, key_path)
        kwargs.update(tls_context=context, require_starttls=True)
    else:
        kwargs.update(auth_require_tls=False)
    controller = Controller(Sink(), hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    yield controller.port, cert_path
    controller.stop()


@pytest.fixture
async def ctx() -> AsyncIterator[CredentialTestContext]:
    async with outbound_client(parse_networks(LOOPBACK)) as http:
        yield CredentialTestContext(http=http, env={"PATCHWIRE_HTTP_ALLOW_NETWORKS": LOOPBACK}, timeout=5)


def smtp(port: int, security: str = "none", password: str = PASSWORD, host: str = "127.0.0.1") -> OpenCredential:
    return cred("smtp", {"host": host, "port": port, "security": security, "username": "alice", "from_address": ""},
                {"password": password})


async def test_smtp_logs_in_to_a_real_server(smtp_server: tuple[int, Path | None], ctx: CredentialTestContext) -> None:
    port, _ = smtp_server
    assert await Smtp().test(ctx, smtp(port)) == f"Connected to 127.0.0.1:{port} (none) as alice"


async def test_smtp_reports_a_refused_log_in_without_the_password(smtp_server: tuple[int, Path | None],
                                                                  ctx: CredentialTestContext) -> None:
    port, _ = smtp_server
    with pytest.raises(CredentialError, match=r"127.0.0.1 refused the log-in of 'alice': 535") as caught:
        await Smtp().test(ctx, smtp(port, password="wrong-password-xyz"))
    assert "wrong-password-xyz" not in str(caught.value)


async def test_smtp_keeps_to_the_outbound_rules_and_names_an_unreachable_server(ctx: CredentialTestContext) -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(CredentialError, match=rf"cannot reach the mail server 127.0.0.1:{port}"):
        await Smtp().test(ctx, smtp(port))
    unguarded = CredentialTestContext(http=ctx.http, env={}, timeout=5)
    with pytest.raises(CredentialError, match=r"127.0.0.1 \(127.0.0.1\) is not a public address: loopback"):
        await Smtp().test(unguarded, smtp(port))


@pytest.mark.parametrize("smtp_server", ["starttls"], indirect=True)
async def test_smtp_starttls_checks_the_certificate(smtp_server: tuple[int, Path | None], ctx: CredentialTestContext,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    port, cert_path = smtp_server
    with pytest.raises(CredentialError, match=rf"the mail server localhost:{port} failed: .*certificate verify failed"):
        await Smtp().test(ctx, smtp(port, "starttls", host="localhost"))
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))  # now the certificate is trusted (OpenSSL reads it per context)
    assert await Smtp().test(ctx, smtp(port, "starttls", host="localhost")) == \
        f"Connected to localhost:{port} (starttls) as alice"


# ---- Telegram against a loopback Bot API ---------------------------------------------------------------------

@pytest.fixture
def telegram_api() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path == f"/bot{BOT_TOKEN}/getMe":
                status, body = 200, {"ok": True, "result": {"id": 1, "is_bot": True, "first_name": "Patch",
                                                            "username": "patch_bot"}}
            else:
                status, body = 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_telegram_calls_get_me(telegram_api: str, ctx: CredentialTestContext) -> None:
    local = CredentialTestContext(http=ctx.http, env={"PATCHWIRE_TELEGRAM_API_URL": telegram_api + "/"})
    assert await TelegramBot().test(local, cred("telegram_bot", {}, {"bot_token": BOT_TOKEN})) == \
        "Authenticated as @patch_bot (Patch)"
    other = "987654321:AAE-revoked-token-of-another-bot"
    with pytest.raises(CredentialError, match="Telegram refused the token: 401 Unauthorized") as caught:
        await TelegramBot().test(local, cred("telegram_bot", {}, {"bot_token": other}))
    assert other not in str(caught.value)
    down = CredentialTestContext(http=ctx.http, env={"PATCHWIRE_TELEGRAM_API_URL": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(CredentialError, match="cannot reach Telegram: ConnectError") as caught:
        await TelegramBot().test(down, cred("telegram_bot", {}, {"bot_token": BOT_TOKEN}))
    assert BOT_TOKEN not in str(caught.value)
