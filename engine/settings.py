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
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from dotenv import load_dotenv


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
    http_allow_networks: str = ""
    """Networks that nodes may call besides public addresses (``PATCHWIRE_HTTP_ALLOW_NETWORKS``)."""

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
    data_dir = Path(env.get("PATCHWIRE_DATA_DIR") or Path.cwd() / ".patchwire").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
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
        secure_cookies=env.get("PATCHWIRE_SECURE_COOKIES", "") in ("1", "true", "yes"),
        inline_wait=float(env.get("PATCHWIRE_INLINE_WAIT", "30")),
        http_allow_networks=env.get("PATCHWIRE_HTTP_ALLOW_NETWORKS", ""),
    )


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
    """Read the generated key, or create it once with mode 0600."""
    path = data_dir / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()
