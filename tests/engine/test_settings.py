from __future__ import annotations

import stat
from pathlib import Path

import pytest

from engine.settings import load_settings


def test_defaults_derive_everything_from_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings({"PATCHWIRE_DATA_DIR": str(tmp_path / "d")})
    assert settings.database_url == f"sqlite:///{tmp_path / 'd' / 'patchwire.db'}"
    assert settings.queue_url == f"sqlite:///{tmp_path / 'd' / 'queue.db'}"
    assert settings.channels_url == "memory://" and settings.profile == "embedded"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


def test_secret_key_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    first = load_settings({"PATCHWIRE_DATA_DIR": str(tmp_path)}).secret_key
    second = load_settings({"PATCHWIRE_DATA_DIR": str(tmp_path)}).secret_key
    assert first == second and len(first) >= 32
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600
    assert load_settings({"PATCHWIRE_DATA_DIR": str(tmp_path), "PATCHWIRE_SECRET_KEY": "given"}).secret_key == "given"


def test_channels_follow_the_queue_unless_redis_is_given(tmp_path: Path) -> None:
    base = {"PATCHWIRE_DATA_DIR": str(tmp_path)}
    pg = load_settings({**base, "QUEUE_URL": "postgresql://db/x"})
    assert pg.channels_url == "postgresql://db/x" and pg.profile == "postgres"
    redis = load_settings({**base, "QUEUE_URL": "redis://r:6379/0"})
    assert redis.channels_url == "redis://r:6379/0" and redis.profile == "redis"
    mixed = load_settings({**base, "QUEUE_URL": "postgresql://db/x", "REDIS_URL": "redis://r/1"})
    assert mixed.channels_url == "redis://r/1"


def test_postgres_urls_are_spelled_one_way(tmp_path: Path) -> None:
    for given in ("postgres://u@h/db", "postgresql+asyncpg://u@h/db", "postgresql+psycopg://u@h/db"):
        settings = load_settings({"PATCHWIRE_DATA_DIR": str(tmp_path), "QUEUE_URL": given})
        assert settings.queue_url == settings.channels_url == "postgresql://u@h/db"


def test_the_public_url_is_one_origin_and_https_makes_cookies_secure(tmp_path: Path) -> None:
    base = {"PATCHWIRE_DATA_DIR": str(tmp_path)}
    assert load_settings(base).public_url == "" and not load_settings(base).https
    https = load_settings({**base, "PATCHWIRE_PUBLIC_URL": "https://Patchwire.Example:8443/"})
    assert https.public_url == "https://patchwire.example:8443" and https.https and https.secure_cookies
    plain = load_settings({**base, "PATCHWIRE_PUBLIC_URL": "http://patchwire.example"})
    assert not plain.https and not plain.secure_cookies


@pytest.mark.parametrize("value", ["patchwire.example", "ftp://patchwire.example", "https://patchwire.example/app",
                                   "https://user@patchwire.example", "https://patchwire.example:99999", "https://"])
def test_a_public_url_that_is_not_an_origin_is_refused_by_name(tmp_path: Path, value: str) -> None:
    with pytest.raises(ValueError, match="PATCHWIRE_PUBLIC_URL must be http"):
        load_settings({"PATCHWIRE_DATA_DIR": str(tmp_path), "PATCHWIRE_PUBLIC_URL": value})


def test_trusted_proxies_are_addresses_or_networks(tmp_path: Path) -> None:
    base = {"PATCHWIRE_DATA_DIR": str(tmp_path)}
    assert load_settings(base).trusted_proxies == ""
    given = load_settings({**base, "PATCHWIRE_TRUSTED_PROXIES": " 127.0.0.1, 10.0.0.0/8,::1 "})
    assert given.trusted_proxies == "127.0.0.1,10.0.0.0/8,::1"
    for wrong in ("proxy.internal", "10.0.0.1/8"):
        with pytest.raises(ValueError, match=f"PATCHWIRE_TRUSTED_PROXIES: '{wrong}' is not an address or network"):
            load_settings({**base, "PATCHWIRE_TRUSTED_PROXIES": wrong})
