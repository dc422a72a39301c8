"""The poll triggers' forms in the editor: each panel renders with its help text, a valid config saves, bad input
(a URL that is not http(s), a bad path, no Google account, an interval out of range) is a message in the form
(422 partial), never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from engine.models import Node
from tests.webapp.conftest import Browser

CASES = {
    "rss_trigger": ({"url": "https://example.com/feed.xml", "interval_minutes": "30"},
                    {"url": "file:///etc/passwd", "interval_minutes": "15"}, "full http:// or https:// URL"),
    "http_poll_trigger": ({"url": "https://api.example.com/orders", "items_path": "data.items", "key_field": "id",
                           "interval_minutes": "5", "timeout": "10"},
                          {"url": "https://api.example.com/orders", "items_path": "data items", "key_field": "id",
                           "interval_minutes": "5", "timeout": "10"}, "Each part of the path"),
    "gmail_trigger": (None, {"query": "is:unread", "label_ids": "INBOX", "interval_minutes": "0"}, ""),
}


@pytest.mark.parametrize("type_name", list(CASES))
def test_poll_trigger_forms(browser: Browser, db_call: Any, type_name: str) -> None:
    browser.register(f"{type_name}@example.com")
    wid = browser.create_workflow()
    node = browser.add_node(wid, type_name)
    panel = browser.get(f"/workflows/{wid}/nodes/{node}")
    assert panel.status_code == 200 and 'name="interval_minutes"' in panel.text
    assert "once the workflow is <strong>active</strong>" in panel.text
    good, bad, message = CASES[type_name]
    if good is not None:
        saved = browser.configure(wid, node, {"name": "Watch", **good})
        assert saved.status_code == 200 and "Saved." in saved.text, saved.text
    refused = browser.configure(wid, node, {"name": "Watch", **bad})
    assert refused.status_code == 422 and message in refused.text
    assert "<html" not in refused.text and "Traceback" not in refused.text
    config = db_call(lambda db: db.scalar(select(Node.config).where(Node.id == node)))
    if good is not None:
        assert config["url"] == good["url"] and config["interval_minutes"] == int(good["interval_minutes"])


def test_gmail_trigger_needs_a_google_account(browser: Browser) -> None:
    browser.register("gmail-form@example.com")
    wid = browser.create_workflow()
    node = browser.add_node(wid, "gmail_trigger")
    panel = browser.get(f"/workflows/{wid}/nodes/{node}")
    assert 'name="credential"' in panel.text and 'name="query"' in panel.text and 'name="label_ids"' in panel.text
    refused = browser.configure(wid, node, {"name": "Mail", "query": "from:x", "label_ids": "INBOX",
                                            "interval_minutes": "1"})
    assert refused.status_code == 422 and "This field is required." in refused.text
    stranger = browser.configure(wid, node, {"name": "Mail", "credential": "999999", "label_ids": "INBOX",
                                             "interval_minutes": "1"})
    assert stranger.status_code == 422, "a credential that is not the owner's is refused in the form"
