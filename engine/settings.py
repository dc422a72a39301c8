"""Settings from the environment (and an optional ``.env`` in the working directory).

| variable | default |
| --- | --- |
| ``PATCHWIRE_DATA_DIR`` | ``./.patchwire`` |
| ``DATABASE_URL`` | ``sqlite:///<data dir>/patchwire.db`` |
| ``QUEUE_URL`` | ``sqlite:///<data dir>/queue.db`` (the embedded SAQ queue) |
| ``CHANNELS_URL`` | ``memory://`` for the embedded queue, else ``REDIS_URL``, else the queue URL |
| ``REDIS_URL`` | unset |
| ``PATCHWIRE_HOST`` / ``PATCHWIRE_PORT`` | ``127.0.0.1`` / ``8000`` |
| ``PATCHWIRE_SECRET_KEY`` | generated once into ``<data dir>/secret_key`` (mode 0600) |
| ``PATCHWIRE_WORKER_CONCURRENCY`` | ``10`` |
| ``PATCHWIRE_EXECUTION_TIMEOUT`` | ``3600`` seconds |
| ``PATCHWIRE_INLINE_WAIT`` | ``30`` seconds: longer waits and back-offs suspend the execution |
| ``PATCHWIRE_LOG_FORMAT`` / ``PATCHWIRE_LOG_LEVEL`` | ``auto`` (JSON lines unless stderr is a terminal) / ``INFO`` |
| ``PATCHWIRE_METRICS`` | ``1``: serve ``/metrics`` (``0``: not at all) |
| ``PATCHWIRE_METRICS_TOKEN`` | unset: ``/metrics`` answers loopback clients only; set: a ``Bearer`` token is required |
| ``PATCHWIRE_METRICS_PORT`` / ``PATCHWIRE_METRICS_HOST`` | unset / ``127.0.0.1``: where ``patchwire worker`` serves its metrics |
| ``PATCHWIRE_RETENTION_DAYS`` | ``30``: finished executions are pruned this many days after they ended (``0``: never) |
| ``PATCHWIRE_RETENTION_PER_WORKFLOW`` | ``0`` (unlimited): keep at most this many finished executions per workflow |
| ``PATCHWIRE_RETENTION_EVERY`` | ``600`` seconds between the workers' prune passes |
| ``PATCHWIRE_PUBLIC_URL`` | unset: the address browsers use (``https://…``: Secure cookies, HSTS; the WebSocket origin) |
| ``PATCHWIRE_TRUSTED_PROXIES`` | unset: addresses / networks of reverse proxies whose ``X-Forwarded-Proto`` / ``-For`` count (HTTPS, the client address of log-in limits) |
| ``PATCHWIRE_CREDENTIALS_KEY`` | unset: the credential keys, ``id:base64url-32-bytes`` separated by commas, the first seals (docs/credentials.md) |
| ``PATCHWIRE_OAUTH_<PROVIDER>_<FIELD>`` | unset: a provider's endpoints (``AUTHORIZE_URL``, ``TOKEN_URL``, ``REVOKE_URL``, ``API_BASE_URL``) and the instance's OAuth app (``CLIENT_ID``, ``CLIENT_SECRET``); docs/credentials.md |
| ``PATCHWIRE_CREDENTIALS_KEY_FILE`` | ``<data dir>/credentials.key``: read when the key setting is unset; generated once (mode 0600) |
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from dotenv import load_dotenv

from engine.files import PRIVATE_FILE, narrow, private_directory

if TYPE_CHECKING:
    from engine.retention import RetentionPolicy


PROVIDER_SETTINGS = ("PATCHWIRE_OAUTH_", "PATCHWIRE_TELEGRAM_API_URL", "PATCHWIRE_HTTP_ALLOW_NETWORKS")


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    queue_url: str
    channels_url: str
    host: str
    port: int
    secret_key: str
    worker_concurrency: int
    execution_timeout: int
    secure_cookies: bool
    inline_wait: float = 30.0
    webhook_inline_runs: int = 100
    """Webhook executions that answer with their output run at most this many at once on the web process's loop
    (``PATCHWIRE_WEBHOOK_INLINE_RUNS``; 0: all go through the queue and its workers; webapp/webhooks/inline.py).
    In every profile: with separate workers too, the web process that holds the request runs them."""
    poll_timeout: float = 60.0
    """Seconds one poll of a polling trigger may take (``PATCHWIRE_POLL_TIMEOUT``; engine/triggers/polling.py)."""
    http_allow_networks: str = ""
    """Networks that nodes may call besides public addresses (``PATCHWIRE_HTTP_ALLOW_NETWORKS``)."""
    log_format: str = "auto"
    log_level: str = "INFO"
    metrics_enabled: bool = True
    metrics_token: str = ""
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    retention_days: float = 30.0
    retention_per_workflow: int = 0
    retention_every: float = 600.0
    webhook_max_body: int = 16 * 1024 * 1024
    binary_storage: str = "file"
    """``PATCHWIRE_BINARY_STORAGE``: where binary data of items is kept, ``file`` (under the data directory) or ``db``."""
    """``PATCHWIRE_WEBHOOK_MAX_BODY``: the largest webhook request body in bytes (413 past it, before it is read)."""
    preview_seconds: float = 2.0
    """The editor's expression preview's time limit (docs/security.md, "Expressions"). Not read from the
    environment: tests give a shorter one."""

    # Where browsers reach Patchwire, and who may say so (webapp/transport.py, docs/security.md)
    public_url: str = ""
    """``PATCHWIRE_PUBLIC_URL``, as ``scheme://host[:port]``: the one origin browsers use. ``https://`` makes
    every cookie ``Secure`` and sends HSTS; empty: each request's own scheme, host and port count."""
    trusted_proxies: str = ""
    """``PATCHWIRE_TRUSTED_PROXIES``: comma-separated addresses / networks of the reverse proxies whose
    ``X-Forwarded-Proto`` and ``X-Forwarded-For`` headers are believed; empty: nobody's."""

    # Credential keys (engine/credentials/keys.py, docs/credentials.md)
    credentials_key: str | None = field(default=None, repr=False)
    """``PATCHWIRE_CREDENTIALS_KEY``: the keys themselves; unset: the key file holds them."""
    credentials_key_file: Path = Path("credentials.key")
    """Where the keys are kept when the setting is unset: ``<data dir>/credentials.key`` by default."""
    provider_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    """The providers' settings as given: ``PATCHWIRE_OAUTH_<PROVIDER>_<FIELD>`` (endpoint overrides, the instance's
    OAuth apps: engine/credentials/oauth.py), ``PATCHWIRE_TELEGRAM_API_URL``, and ``PATCHWIRE_HTTP_ALLOW_NETWORKS``
    (a credential's Test that connects itself, such as SMTP's, honours the operator's allowed networks)."""

    @property
    def https(self) -> bool:
        """Browsers reach Patchwire over HTTPS (``PATCHWIRE_PUBLIC_URL`` says so)."""
        return self.public_url.startswith("https://")

    @property
    def retention(self) -> RetentionPolicy:
        from engine.retention import RetentionPolicy

        return RetentionPolicy(days=self.retention_days, per_workflow=self.retention_per_workflow,
                               binary_dir=self.data_dir / "binary")

    @property
    def embedded_queue(self) -> bool:
        return self.queue_url.startswith("sqlite")

    @property
    def profile(self) -> str:
        if self.embedded_queue:
            return "embedded"
        return "redis" if self.queue_url.startswith("redis") else "postgres"


def load_settings(env: dict[str, str] | None = None) -> Settings:
    if env is None:
        load_dotenv(Path.cwd() / ".env", override=False)
        env = dict(os.environ)
    data_dir = private_directory(Path(env.get("PATCHWIRE_DATA_DIR") or Path.cwd() / ".patchwire").resolve())
    public_url = public_url_setting(env.get("PATCHWIRE_PUBLIC_URL", ""))
    queue_url = normalize_service_url(env.get("QUEUE_URL") or f"sqlite:///{data_dir / 'queue.db'}")
    return Settings(
        data_dir=data_dir,
        database_url=env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'patchwire.db'}",
        queue_url=queue_url,
        channels_url=normalize_service_url(env.get("CHANNELS_URL") or _default_channels(queue_url, env.get("REDIS_URL"))),
        host=env.get("PATCHWIRE_HOST", "127.0.0.1"),
        port=int(env.get("PATCHWIRE_PORT", "8000")),
        secret_key=env.get("PATCHWIRE_SECRET_KEY") or _secret_key(data_dir),
        worker_concurrency=int(env.get("PATCHWIRE_WORKER_CONCURRENCY", "10")),
        execution_timeout=int(env.get("PATCHWIRE_EXECUTION_TIMEOUT", "3600")),
        secure_cookies=env.get("PATCHWIRE_SECURE_COOKIES", "") in ("1", "true", "yes") or public_url.startswith("https://"),
        inline_wait=float(env.get("PATCHWIRE_INLINE_WAIT", "30")),
        poll_timeout=_positive(env, "PATCHWIRE_POLL_TIMEOUT", 60.0),
        webhook_inline_runs=int(_non_negative(env, "PATCHWIRE_WEBHOOK_INLINE_RUNS", 100)),
        http_allow_networks=env.get("PATCHWIRE_HTTP_ALLOW_NETWORKS", ""),
        log_format=_choice(env, "PATCHWIRE_LOG_FORMAT", ("auto", "json", "text")),
        log_level=env.get("PATCHWIRE_LOG_LEVEL", "INFO").upper(),
        metrics_enabled=env.get("PATCHWIRE_METRICS", "1").lower() not in ("0", "false", "no", "off"),
        metrics_token=env.get("PATCHWIRE_METRICS_TOKEN", ""),
        metrics_port=int(_non_negative(env, "PATCHWIRE_METRICS_PORT", 0)) or None,
        metrics_host=env.get("PATCHWIRE_METRICS_HOST", "127.0.0.1"),
        retention_days=_non_negative(env, "PATCHWIRE_RETENTION_DAYS", 30.0),
        retention_per_workflow=int(_non_negative(env, "PATCHWIRE_RETENTION_PER_WORKFLOW", 0)),
        retention_every=_non_negative(env, "PATCHWIRE_RETENTION_EVERY", 600.0) or 600.0,
        binary_storage=_choice(env, "PATCHWIRE_BINARY_STORAGE", ("file", "db")),
        webhook_max_body=int(_non_negative(env, "PATCHWIRE_WEBHOOK_MAX_BODY", 16 * 1024 * 1024)) or 16 * 1024 * 1024,
        public_url=public_url,
        trusted_proxies=trusted_proxies_setting(env.get("PATCHWIRE_TRUSTED_PROXIES", "")),
        credentials_key=env.get("PATCHWIRE_CREDENTIALS_KEY", "").strip() or None,
        credentials_key_file=Path(env.get("PATCHWIRE_CREDENTIALS_KEY_FILE") or data_dir / "credentials.key"),
        provider_env={k: v for k, v in env.items() if k.startswith(PROVIDER_SETTINGS)},
    )


def _choice(env: dict[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, choices[0]).lower()
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def _number(env: dict[str, str], name: str, default: float) -> float:
    try:
        return float(env.get(name) or default)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {env[name]!r}") from None


def _non_negative(env: dict[str, str], name: str, default: float) -> float:
    value = _number(env, name, default)
    if value < 0:
        raise ValueError(f"{name} must be 0 or more, not {value:g}")
    return value


def _positive(env: dict[str, str], name: str, default: float) -> float:
    value = _number(env, name, default)
    if not value > 0:
        raise ValueError(f"{name} must be more than 0, not {value:g}")
    return value


def normalize_service_url(url: str) -> str:
    """One spelling per service: ``postgresql://`` for PostgreSQL whatever driver suffix was given."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgres", "postgresql", "postgresql+asyncpg", "postgresql+psycopg", "postgresql+psycopg2"):
        return f"postgresql://{rest}"
    return url


def _default_channels(queue_url: str, redis_url: str | None) -> str:
    if queue_url.startswith("sqlite"):
        return "memory://"
    return redis_url or queue_url


def _secret_key(data_dir: Path) -> str:
    """Read the generated key, or create it once with mode 0600 (engine/files.py)."""
    path = data_dir / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        narrow(path, PRIVATE_FILE)
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def public_url_setting(value: str) -> str:
    """``PATCHWIRE_PUBLIC_URL`` as ``scheme://host[:port]`` (lower case, no path), or empty."""
    value = value.strip()
    if not value:
        return ""
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1 or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"PATCHWIRE_PUBLIC_URL must be http(s)://host[:port] (no path), not {value!r}")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def trusted_proxies_setting(value: str) -> str:
    """``PATCHWIRE_TRUSTED_PROXIES``: each item an address, a network, or ``*`` (everyone: only when nothing but
    the proxy can reach Patchwire)."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    for item in items:
        if item == "*":
            continue
        try:
            ipaddress.ip_network(item)
        except ValueError:
            raise ValueError(f"PATCHWIRE_TRUSTED_PROXIES: {item!r} is not an address or network "
                             "(e.g. 127.0.0.1,10.0.0.0/8)") from None
    return ",".join(items)
