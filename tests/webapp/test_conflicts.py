"""Two tabs never silently overwrite each other: a write based on a stale node version is a 409 that
says what changed, and the stored node keeps the other tab's change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine.models import Connection, Node
from tests.webapp.conftest import Browser


def stored(db_call: Any, node_id: str) -> Node:
    return db_call(lambda db: db.scalar(select(Node).where(Node.id == node_id)))


def version_of(response: Any) -> int:
    return int(response.headers["x-node-version"])


def test_a_stale_config_save_is_refused_and_names_what_changed(browser: Browser, db_call: Any) -> None:
    browser.register("tabs@example.com")
    wid = browser.create_workflow()
    node = browser.add_node(wid, "delay")
    seen = stored(db_call, node).version  # both tabs opened the node at this version

    first = browser.configure(wid, node, {"name": "Wait a bit", "seconds": "5", "version": seen})
    assert first.status_code == 200, first.text
    assert version_of(first) == seen + 1

    second = browser.configure(wid, node, {"name": "Delay", "seconds": "9", "version": seen})
    assert second.status_code == 409
    assert second.headers["hx-retarget"] == "#flash"
    assert "changed in another tab" in second.text
    assert "Its name is now “Wait a bit”." in second.text and "Its field “seconds” is now 5.0." in second.text
    assert 'data-pw-action="reload"' in second.text
    node_row = stored(db_call, node)
    assert node_row.name == "Wait a bit" and node_row.config["seconds"] == 5  # the first tab's change stays

    again = browser.configure(wid, node, {"name": "Delay", "seconds": "9",
                                          "version": version_of(first)})
    assert again.status_code == 200 and stored(db_call, node).config["seconds"] == 9


def test_a_stale_move_and_a_stale_delete_are_refused(browser: Browser, db_call: Any) -> None:
    browser.register("moves@example.com")
    wid = browser.create_workflow()
    node = browser.add_node(wid, "delay", 10, 10)
    seen = stored(db_call, node).version
    moved = browser.post(f"/workflows/{wid}/nodes/{node}/position", {"x": 100, "y": 50, "version": seen})
    assert moved.status_code == 204 and version_of(moved) == seen + 1

    stale = browser.post(f"/workflows/{wid}/nodes/{node}/position", {"x": 7, "y": 7, "version": seen})
    assert stale.status_code == 409 and "Its position is now (100, 50)" in stale.text
    assert (stored(db_call, node).pos_x, stored(db_call, node).pos_y) == (100, 50)

    refused = browser.delete(f"/workflows/{wid}/nodes/{node}?version={seen}")
    assert refused.status_code == 409 and stored(db_call, node) is not None
    assert browser.delete(f"/workflows/{wid}/nodes/{node}?version={seen + 1}").status_code == 204
    assert stored(db_call, node) is None
    # deleting what another tab already deleted is what this tab wanted
    assert browser.delete(f"/workflows/{wid}/nodes/{node}?version={seen + 1}").status_code == 204


def test_a_write_to_a_node_deleted_elsewhere_is_a_conflict(browser: Browser, db_call: Any) -> None:
    browser.register("gone@example.com")
    wid = browser.create_workflow()
    trigger = browser.add_node(wid, "manual_trigger")
    node = browser.add_node(wid, "delay")
    seen = stored(db_call, node).version
    assert browser.delete(f"/workflows/{wid}/nodes/{node}").status_code == 204  # the other tab

    moved = browser.post(f"/workflows/{wid}/nodes/{node}/position", {"x": 1, "y": 1, "version": seen})
    assert moved.status_code == 409 and "deleted in another tab" in moved.text
    saved = browser.configure(wid, node, {"name": "X", "seconds": "1", "version": seen})
    assert saved.status_code == 409
    wired = browser.connect(wid, trigger, node)
    assert wired.status_code == 409 and "deleted in another tab" in wired.text
    assert db_call(lambda db: db.scalar(select(Connection.id))) is None


def test_api_clients_get_problem_json_and_other_owners_still_get_404(browser: Browser, second_browser: Browser,
                                                                      db_call: Any) -> None:
    browser.register("owner@example.com")
    wid = browser.create_workflow()
    node = browser.add_node(wid, "delay")
    seen = stored(db_call, node).version
    browser.post(f"/workflows/{wid}/nodes/{node}/position", {"x": 5, "y": 5, "version": seen})
    problem = browser.post(f"/workflows/{wid}/nodes/{node}/position", {"x": 9, "y": 9, "version": seen},
                           htmx=False, headers={"accept": "application/json"})
    assert problem.status_code == 409
    assert problem.headers["content-type"].startswith("application/problem+json")
    body = problem.json()
    assert body["current_version"] == seen + 1 and body["node_id"] == node and body["changes"]

    second_browser.register("intruder@example.com")
    for response in (second_browser.post(f"/workflows/{wid}/nodes/{node}/position", {"x": 1, "y": 1, "version": 1}),
                     second_browser.delete(f"/workflows/{wid}/nodes/{node}?version=1")):
        assert response.status_code == 404
    assert browser.post(f"/workflows/{wid}/nodes/{node}/position", {"x": 1, "y": 1, "version": "abc"}).status_code == 400
    bad = browser.configure(wid, node, {"name": "Delay", "seconds": "1", "version": "abc"})
    assert bad.status_code == 422 and "version must be a whole number" in bad.text
