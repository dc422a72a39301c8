"""The node panel's autosave (webapp/workflows/autosave.py): a small JSON answer instead of a new panel,
with the node's version, the fields refused, and the canvas's out-of-band parts; stale edits still 409."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine.models import Node
from tests.webapp.conftest import Browser

AUTOSAVE = {"x-autosave": "1"}


def stored(db_call: Any, node_id: str) -> Node:
    return db_call(lambda db: db.scalar(select(Node).where(Node.id == node_id)))


def test_an_autosave_answers_with_the_new_version_and_the_canvas_parts(browser: Browser, db_call: Any) -> None:
    browser.register("autosave@example.com")
    wid = browser.create_workflow()
    node = browser.add_node(wid, "delay")
    seen = stored(db_call, node).version

    saved = browser.post(f"/workflows/{wid}/nodes/{node}", {"name": "Short wait", "seconds": "4", "version": seen},
                         headers=AUTOSAVE)
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert body["version"] == seen + 1 == int(saved.headers["x-node-version"])
    assert body["errors"] == {} and body["outputs"] == ["main"]
    assert f'id="title-{node}" hx-swap-oob="true">Short wait<' in body["oob"]
    assert f'id="status-{node}"' in body["oob"] and f'id="ports-{node}"' in body["oob"]
    assert "node-form" not in saved.text  # not a panel: the form being typed in stays
    row = stored(db_call, node)
    assert row.name == "Short wait" and row.config["seconds"] == 4 and row.version == seen + 1


def test_an_invalid_value_is_refused_per_field_and_the_stored_config_stays(browser: Browser, db_call: Any) -> None:
    browser.register("autosave-bad@example.com")
    wid = browser.create_workflow()
    node = browser.add_node(wid, "delay")
    seen = stored(db_call, node).version
    browser.post(f"/workflows/{wid}/nodes/{node}", {"name": "Delay", "seconds": "3", "version": seen},
                 headers=AUTOSAVE)

    refused = browser.post(f"/workflows/{wid}/nodes/{node}", {"name": "Delay", "seconds": "soon",
                                                               "version": seen + 1}, headers=AUTOSAVE)
    assert refused.status_code == 422
    body = refused.json()
    assert set(body["errors"]) == {"seconds"} and body["errors"]["seconds"]
    assert body["version"] == seen + 1 and body["oob"] == ""  # nothing written: the version is unchanged
    assert stored(db_call, node).config["seconds"] == 3


def test_a_stale_autosave_is_a_conflict_and_changes_nothing(browser: Browser, db_call: Any) -> None:
    browser.register("autosave-stale@example.com")
    wid = browser.create_workflow()
    node = browser.add_node(wid, "delay")
    seen = stored(db_call, node).version
    first = browser.post(f"/workflows/{wid}/nodes/{node}", {"name": "Delay", "seconds": "5", "version": seen},
                         headers=AUTOSAVE)
    assert first.status_code == 200

    for seconds in ("9", "not a number"):  # a stale tab learns of the conflict first, valid or not
        stale = browser.post(f"/workflows/{wid}/nodes/{node}", {"name": "Delay", "seconds": seconds,
                                                                "version": seen}, headers=AUTOSAVE)
        assert stale.status_code == 409
        assert stale.headers["hx-retarget"] == "#flash" and "changed in another tab" in stale.text
    assert stored(db_call, node).config["seconds"] == 5
