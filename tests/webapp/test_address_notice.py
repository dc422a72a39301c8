"""The node panel says up front when a URL's literal address will be refused at run time (engine/netguard.py),
naming PATCHWIRE_HTTP_ALLOW_NETWORKS; public URLs, expressions and allowed networks get no notice."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.settings import load_settings
from tests.webapp.conftest import Browser
from webapp.app import create_app

SETTING = "PATCHWIRE_HTTP_ALLOW_NETWORKS"


@pytest.fixture
def allow() -> str:
    return ""  # the default: nothing but public addresses


@pytest.fixture
def app_factory(database_url: str, tmp_path: Path, allow: str) -> Callable[[], Any]:
    env = {"PATCHWIRE_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": database_url,
           "PATCHWIRE_SECRET_KEY": "test-secret-key-0123456789", SETTING: allow}
    return lambda: create_app(load_settings(env))


def notice(panel: str) -> str | None:
    found = re.search(r'<p class="alert alert-notice" role="note" id="notice-url"[^>]*>(.*?)</p>', panel, re.S)
    return html.unescape(found.group(1)) if found else None


def http_node(browser: Browser, type_name: str = "http_request") -> tuple[int, str]:
    browser.register("notice@example.com")
    wid = browser.create_workflow("Reach")
    return wid, browser.add_node(wid, type_name)


@pytest.mark.parametrize(("url", "why"), [
    ("http://127.0.0.1/", "loopback"), ("http://localhost:8080/x", "loopback"),
    ("http://10.1.2.3/api", "private"), ("http://[::1]:9/", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "link-local")])
def test_a_refused_literal_address_gets_a_notice_naming_the_setting(browser: Browser, url: str, why: str) -> None:
    wid, node = http_node(browser)
    saved = browser.configure(wid, node, {"name": "Local", "url": url})
    assert saved.status_code == 200
    for panel in (saved.text, browser.get(f"/workflows/{wid}/nodes/{node}").text):  # after saving and on opening
        text = notice(panel)
        assert text, panel
        assert SETTING in text and "not a public address" in text and why in text


@pytest.mark.parametrize("url", ["https://api.example.com/v1", "http://93.184.215.14/", "{{ item.url }}",
                                 "http://{{ item.host }}/", "http://internal.example/"])
def test_public_urls_expressions_and_names_get_none(browser: Browser, url: str) -> None:
    wid, node = http_node(browser)
    saved = browser.configure(wid, node, {"name": "Public", "url": url})
    assert saved.status_code == 200
    assert notice(saved.text) is None and notice(browser.get(f"/workflows/{wid}/nodes/{node}").text) is None
    assert SETTING not in saved.text


def test_the_notice_shows_with_field_errors_and_for_the_poll_trigger(browser: Browser) -> None:
    wid, node = http_node(browser, "http_poll_trigger")
    refused = browser.configure(wid, node, {"name": "Poll", "url": "http://192.168.1.10/feed", "interval_minutes": "nope"})
    assert refused.status_code == 422 and SETTING in (notice(refused.text) or "")


@pytest.mark.parametrize("allow", ["127.0.0.0/8, 10.0.0.0/8"])
def test_an_allowed_network_gets_no_notice(browser: Browser, allow: str) -> None:
    wid, node = http_node(browser)
    assert notice(browser.configure(wid, node, {"name": "Local", "url": "http://127.0.0.1:8080/"}).text) is None
    assert notice(browser.configure(wid, node, {"name": "Lan", "url": "http://10.9.8.7/"}).text) is None
    other = browser.configure(wid, node, {"name": "Lan", "url": "http://192.168.0.2/"})  # not in the allowance
    assert SETTING in (notice(other.text) or "")
