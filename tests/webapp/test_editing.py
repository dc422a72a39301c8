"""The editor's many-node endpoints: paste, batch positions, batch delete (one transaction each)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import select

from engine.models import Connection, Node
from tests.webapp.conftest import Browser


def graph(db_call: Any, workflow_id: int) -> tuple[dict[str, Node], set[tuple[str, str, str, str]]]:
    async def read(db: Any) -> Any:
        nodes = {n.id: n for n in await db.scalars(select(Node).where(Node.workflow_id == workflow_id))}
        conns = {(c.source_node_id, c.source_port, c.target_node_id, c.target_port)
                 for c in await db.scalars(select(Connection).where(Connection.workflow_id == workflow_id))}
        return nodes, conns

    return db_call(read)


def export(browser: Browser, workflow_id: int) -> dict[str, Any]:
    response = browser.get(f"/workflows/{workflow_id}/export")
    assert response.status_code == 200, response.text
    return json.loads(response.content)


def pasted_meta(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" class="pw-pasted-meta">(.*?)</script>', html, re.S)
    assert match, html
    return json.loads(match.group(1))


def paste(browser: Browser, workflow_id: int, document: Any, **form: Any) -> Any:
    text = document if isinstance(document, str) else json.dumps(document)
    return browser.post(f"/workflows/{workflow_id}/paste", {"document": text, **form})


@pytest.fixture
def source(browser: Browser) -> tuple[int, str, str]:
    browser.register("paste@example.com")
    wid = browser.create_workflow("Source")
    trigger = browser.add_node(wid, "manual_trigger", 10, 20)
    delay = browser.add_node(wid, "delay", 300, 20)
    assert browser.configure(wid, delay, {"name": "Wait a bit", "seconds": "3"}).status_code == 200
    assert browser.connect(wid, trigger, delay).status_code == 201
    return wid, trigger, delay


def test_paste_creates_fresh_ids_offset_positions_and_unique_names(browser: Browser, db_call: Any,
                                                                  source: tuple[int, str, str]) -> None:
    wid, trigger, delay = source
    document = export(browser, wid)
    response = paste(browser, wid, document, dx=40, dy=50)
    assert response.status_code == 201, response.text
    meta = pasted_meta(response.text)
    assert set(meta["ids"]) == {trigger, delay} and not set(meta["ids"].values()) & {trigger, delay}
    new_trigger, new_delay = meta["ids"][trigger], meta["ids"][delay]
    assert f'data-node-id="{new_trigger}"' in response.text and f'data-node-id="{new_delay}"' in response.text
    assert meta["connections"] == [{"source": new_trigger, "source_port": "main",
                                    "target": new_delay, "target_port": "main"}]
    nodes, conns = graph(db_call, wid)
    assert len(nodes) == 4 and (new_trigger, "main", new_delay, "main") in conns and len(conns) == 2
    assert nodes[new_delay].name == "Wait a bit 2" and nodes[new_trigger].name == "Manual Trigger 2"
    assert nodes[new_delay].config == {"seconds": 3.0} or nodes[new_delay].config["seconds"] == 3
    assert (nodes[new_delay].pos_x, nodes[new_delay].pos_y) == (340, 70)
    again = paste(browser, wid, document, dx=80, dy=100)
    names = {n.name for n in graph(db_call, wid)[0].values()}
    assert again.status_code == 201 and {"Wait a bit 3", "Manual Trigger 3"} <= names


def test_paste_into_another_workflow_keeps_names_and_accepts_unfinished_nodes(browser: Browser, db_call: Any,
                                                                              source: tuple[int, str, str]) -> None:
    wid, _, _ = source
    browser.add_node(wid, "http_request", 500, 20)  # no URL yet: still copyable
    other = browser.create_workflow("Target")
    response = paste(browser, other, export(browser, wid), dx=0, dy=0)
    assert response.status_code == 201, response.text
    nodes, conns = graph(db_call, other)
    assert {n.name for n in nodes.values()} == {"Manual Trigger", "Wait a bit", "HTTP Request"}
    assert len(conns) == 1


@pytest.mark.parametrize(("document", "message"), [
    ("hello world", "Not a Patchwire workflow"),
    ('{"some": "json"}', "Not a Patchwire workflow: Object contains unknown field some"),
    ('{"name": "x", "format": "something.else"}', "Not a Patchwire workflow"),
    ({"name": "x", "nodes": []}, "Nothing to paste"),
    ({"name": "x", "nodes": [{"id": "a", "type": "teleport", "name": "Beam"}]}, "unknown node type &#39;teleport&#39;"),
    ({"name": "x", "nodes": [{"id": "a", "type": "delay", "name": "A"}, {"id": "a", "type": "delay", "name": "B"}]},
     "Duplicate node id &#39;a&#39;"),
    ({"name": "x", "nodes": [{"id": "a", "type": "delay", "name": "A"}],
      "connections": [{"source": "a", "target": "ghost"}]}, "refers to a node that does not exist: &#39;ghost&#39;"),
    ({"name": "x", "nodes": [{"id": "a", "type": "delay", "name": "A", "config": {"seconds": "soon"}}]},
     "A: seconds"),
    ({"name": "x", "nodes": [{"id": "a", "type": "delay", "name": "A"}, {"id": "b", "type": "delay", "name": "B"}],
      "connections": [{"source": "a", "target": "b"}, {"source": "b", "target": "a"}]}, "cycle"),
    ("x" * (1024 * 1024 + 1), "Too large: the pasted text is 1,048,577 bytes; at most 1 MiB"),
])
def test_bad_paste_is_refused_precisely_and_changes_nothing(browser: Browser, db_call: Any,
                                                            source: tuple[int, str, str], document: Any,
                                                            message: str) -> None:
    wid, _, _ = source
    before = graph(db_call, wid)
    before_names = {k: n.name for k, n in before[0].items()}
    response = paste(browser, wid, document)
    assert response.status_code == 422, response.text
    assert "Nothing was pasted" in response.text and message in response.text, response.text
    assert response.headers["hx-retarget"] == "#flash"
    after = graph(db_call, wid)
    assert {k: n.name for k, n in after[0].items()} == before_names and after[1] == before[1]


def test_attach_restores_a_deleted_node_with_its_connections(browser: Browser, db_call: Any,
                                                             source: tuple[int, str, str]) -> None:
    wid, trigger, delay = source
    after = browser.add_node(wid, "delay", 600, 20)
    browser.connect(wid, delay, after)
    document = export(browser, wid)
    snapshot = {**document, "nodes": [n for n in document["nodes"] if n["id"] == delay],
                "connections": [c for c in document["connections"] if delay in (c["source"], c["target"])]}
    assert browser.post(f"/workflows/{wid}/nodes/delete", json={"nodes": [delay]}).status_code == 204
    assert len(graph(db_call, wid)[1]) == 0
    without_attach = paste(browser, wid, snapshot, dx=0, dy=0)
    assert without_attach.status_code == 422 and "does not exist" in without_attach.text
    restored = paste(browser, wid, snapshot, dx=0, dy=0, attach="1")
    assert restored.status_code == 201, restored.text
    new = pasted_meta(restored.text)["ids"][delay]
    nodes, conns = graph(db_call, wid)
    assert nodes[new].name == "Wait a bit" and (nodes[new].pos_x, nodes[new].pos_y) == (300, 20)
    assert conns == {(trigger, "main", new, "main"), (new, "main", after, "main")}
    # restoring a connection that would close a loop is refused as a whole
    loop = {**snapshot, "nodes": [{**snapshot["nodes"][0], "id": "z", "name": "Z"}],
            "connections": [{"source": after, "target": "z"}, {"source": "z", "target": new}]}
    refused = paste(browser, wid, loop, attach="1")
    assert refused.status_code == 422 and "cycle" in refused.text
    assert graph(db_call, wid)[1] == conns


def test_batch_positions_save_all_or_nothing(browser: Browser, db_call: Any, source: tuple[int, str, str]) -> None:
    wid, trigger, delay = source
    url = f"/workflows/{wid}/positions"
    ok = browser.post(url, json={"positions": [{"node": trigger, "x": 1, "y": 2}, {"node": delay, "x": 3.25, "y": 4}]})
    assert ok.status_code == 204, ok.text
    nodes = graph(db_call, wid)[0]
    assert (nodes[trigger].pos_x, nodes[trigger].pos_y, nodes[delay].pos_x) == (1, 2, 3.2)
    for body, status in [({"positions": [{"node": trigger, "x": 9, "y": 9}, {"node": "nope", "x": 1, "y": 1}]}, 404),
                         ({"positions": [{"node": trigger, "x": 9, "y": 9}, {"node": delay, "x": 1e12, "y": 1}]}, 422),
                         ({"positions": [{"node": trigger, "x": 9, "y": 9}, {"node": trigger, "x": 1, "y": 1}]}, 422),
                         ({"positions": []}, 422),
                         ({"positions": [{"node": trigger, "x": "left", "y": 1}]}, 400),
                         ({"positions": [{"node": trigger, "x": 1, "y": 1, "z": 0}]}, 400)]:
        response = browser.post(url, json=body)
        assert response.status_code == status, (body, response.text)
    nodes = graph(db_call, wid)[0]
    assert (nodes[trigger].pos_x, nodes[trigger].pos_y) == (1, 2)


def test_batch_delete_removes_nodes_and_their_connections(browser: Browser, db_call: Any,
                                                          source: tuple[int, str, str]) -> None:
    wid, trigger, delay = source
    missing = browser.post(f"/workflows/{wid}/nodes/delete", json={"nodes": [trigger, "nope"]})
    assert missing.status_code == 404 and len(graph(db_call, wid)[0]) == 2
    assert browser.post(f"/workflows/{wid}/nodes/delete", json={"nodes": [trigger, delay]}).status_code == 204
    assert graph(db_call, wid) == ({}, set())


def test_another_users_workflow_is_404_and_csrf_is_required(browser: Browser, second_browser: Browser, db_call: Any,
                                                            source: tuple[int, str, str]) -> None:
    wid, trigger, delay = source
    second_browser.register("intruder@example.com")
    own = second_browser.create_workflow("Mine")
    document = export(browser, wid)
    assert second_browser.get(f"/workflows/{wid}/export").status_code == 404
    assert paste(second_browser, wid, document).status_code == 404
    assert second_browser.post(f"/workflows/{wid}/positions",
                               json={"positions": [{"node": trigger, "x": 5, "y": 5}]}).status_code == 404
    assert second_browser.post(f"/workflows/{wid}/nodes/delete", json={"nodes": [trigger]}).status_code == 404
    # the intruder's own workflow cannot reach the victim's nodes either
    attach = {**document, "nodes": [{"id": "x", "type": "delay", "name": "X"}],
              "connections": [{"source": trigger, "target": "x"}]}
    assert paste(second_browser, own, attach, attach="1").status_code == 422
    assert second_browser.post(f"/workflows/{own}/positions",
                               json={"positions": [{"node": trigger, "x": 5, "y": 5}]}).status_code == 404
    assert second_browser.post(f"/workflows/{own}/nodes/delete", json={"nodes": [delay]}).status_code == 404
    # no CSRF header: refused
    for url, kw in [(f"/workflows/{wid}/paste", {"data": {"document": json.dumps(document)}}),
                    (f"/workflows/{wid}/positions", {"json": {"positions": [{"node": trigger, "x": 5, "y": 5}]}}),
                    (f"/workflows/{wid}/nodes/delete", {"json": {"nodes": [trigger]}})]:
        assert browser._call("post", url, **kw).status_code == 403
    nodes, conns = graph(db_call, wid)
    assert len(nodes) == 2 and len(conns) == 1 and (nodes[trigger].pos_x, nodes[trigger].pos_y) == (10, 20)
