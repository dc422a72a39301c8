"""Webhooks in the editor, in a real browser against a real ``patchwire serve`` (both profiles), with real HTTP.

A person builds Webhook → Set → Respond to Webhook from the palette, copies the webhook's URL, presses *Listen*
and a request sent from the test (httpx) appears in the request log while the canvas runs it live (the draft: the
workflow is not active); then activates the workflow and gets the response body from the URL; then replays the
captured request into a draft run and watches it run.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from test_editor_flow import (
    CanvasNode,
    connection,
    create_workflow,
    drag_connection,
    drop_node,
    open_config,
    register,
    save,
)

if TYPE_CHECKING:
    from conftest import PageErrors, Server

pytestmark = pytest.mark.e2e
RUN_TIMEOUT = 30_000  # ms: bound for each live change


def stored(server: Server, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows from the server's own database (SQLite file or PostgreSQL), read-only. ``?`` placeholders."""
    url = server.env.get("DATABASE_URL")
    if not url:
        path = Path(server.env["PATCHWIRE_DATA_DIR"]) / "patchwire.db"
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            return conn.execute(sql, args).fetchall()
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql.replace("?", "%s"), args).fetchall()


def wait_until_listening(server: Server, node_id: str) -> None:
    """Until the Listen request has committed ``webhooks.listening_until`` (a condition on the row)."""
    deadline = time.monotonic() + RUN_TIMEOUT / 1000
    while not stored(server, "SELECT listening_until FROM webhooks WHERE node_id = ?", node_id)[0][0]:
        assert time.monotonic() < deadline, "Listen did not start listening"
        time.sleep(0.02)


def badge(page: Page, node: CanvasNode) -> Any:
    return page.locator(f"#node-{node.df_id} #status-{node.node_id}")


def build(page: Page) -> dict[str, CanvasNode]:
    """Webhook → Greet (Set) → Respond, dragged from the palette, configured in the panel, wired by mouse."""
    nodes = {"hook": drop_node(page, "webhook_trigger", 20, 80), "greet": drop_node(page, "set", 300, 80),
             "respond": drop_node(page, "respond_to_webhook", 580, 80)}
    form = open_config(page, nodes["hook"])
    expect(form.locator("h2")).to_have_text("Webhook")
    form.locator("#cfg-response_mode").select_option("respond_node")
    save(page, form)

    form = open_config(page, nodes["greet"])
    form.locator("#node-name").fill("Greet")
    form.locator('input[name="fields.name"]').first.fill("greeting")
    form.locator('input[name="fields.value"]').first.fill("Hello {{ item.body.name }}")
    save(page, form)

    form = open_config(page, nodes["respond"])
    form.locator("#cfg-respond_with").select_option("json")
    form.locator("#cfg-status").fill("201")
    form.locator("#cfg-body").fill('{"said": "{{ item.greeting }}"}')
    save(page, form)

    for source, target in (("hook", "greet"), ("greet", "respond")):
        saved = drag_connection(page, nodes[source], "output_1", nodes[target], "input_1")
        assert saved.status == 201, saved.text()
        expect(connection(page, nodes[source], "output_1", nodes[target], "input_1")).to_have_count(1)
    return nodes


def test_listen_activate_and_replay(page: Page, server: Server, page_errors: PageErrors) -> None:
    base = server.url
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    register(page, base)
    create_workflow(page, base, "Greeter")
    nodes = build(page)
    hook, greet, respond = nodes["hook"], nodes["greet"], nodes["respond"]

    # 1. The webhook's panel: its URL (copied with one click), methods, and that it is not active. -------------
    open_config(page, hook)
    webhook_panel = page.locator("#webhook-panel")
    url_field = webhook_panel.get_by_label(re.compile(r"^URL"))
    expect(url_field).to_have_value(re.compile(rf"^{re.escape(base)}/webhook/[A-Za-z0-9_-]{{32}}$"))
    url = url_field.input_value()
    token = stored(server, "SELECT token FROM webhooks WHERE node_id = ?", hook.node_id)[0][0]
    assert url == f"{base}/webhook/{token}"
    expect(webhook_panel.locator(".webhook-methods")).to_have_text("POST")
    expect(webhook_panel.locator("#webhook-state")).to_contain_text("Inactive: requests get 404 unless you listen")
    webhook_panel.get_by_role("button", name="Copy").click()
    expect(webhook_panel.locator(".webhook-copied")).to_have_text("Copied.")
    assert page.evaluate("() => navigator.clipboard.readText()") == url
    expect(webhook_panel.locator(".webhook-log")).to_contain_text("No request yet")
    assert httpx.post(url, json={"name": "nobody"}).status_code == 404  # inactive and nobody listens

    # 2. Listen; a request sent now is captured, shown, and runs the draft live on the canvas. ---------------
    webhook_panel.get_by_role("button", name="Listen", exact=True).click()
    expect(page.locator("#webhook-waiting")).to_be_visible()
    expect(webhook_panel.get_by_role("button", name="Listen", exact=True)).to_be_disabled()
    wait_until_listening(server, hook.node_id)
    reply = httpx.post(f"{url}?source=e2e", json={"name": "Ada"})
    assert reply.status_code == 200, reply.text
    assert "not active" in reply.json()["message"]
    captured_execution = reply.json()["execution_id"]

    heard = page.locator("#webhook-listen-result .webhook-heard")
    expect(heard).to_contain_text("Received POST", timeout=RUN_TIMEOUT)
    expect(heard).to_have_attribute("data-execution-id", str(captured_execution))
    expect(page.locator("#webhook-waiting")).to_be_hidden()
    newest = page.locator("#webhook-log .webhook-request").first
    expect(newest).to_have_attribute("data-outcome", "captured")
    expect(page.locator("#webhook-log .webhook-request")).to_have_count(2)  # and the 404 before it
    expect(page.locator("#run-test-label")).to_have_text("Request captured by Listen (runs the draft)")
    for node in (hook, greet, respond):
        expect(badge(page, node)).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT)
    run_status = page.locator("#run-status")
    expect(run_status).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT)
    expect(run_status.get_by_role("link")).to_have_text(f"#{captured_execution}")
    # the logged request: its body and query as JSON trees, its headers (secrets masked)
    newest.locator("summary").first.click()
    expect(newest.locator(".webhook-body")).to_contain_text("Ada")
    expect(newest.locator(".webhook-query")).to_contain_text("e2e")
    assert stored(server, "SELECT trigger, trigger_node FROM executions WHERE id = ?", captured_execution) == [
        ("listen", hook.node_id)]

    # 3. Activate: the panel says requests run the published version; a request gets the Respond node's body. --
    page.locator("#active-toggle").click()
    expect(page.locator("#active-toggle")).to_have_attribute("aria-checked", "true")
    expect(page.locator("#webhook-state")).to_contain_text("Active: requests run the published version")
    reply = httpx.post(url, json={"name": "Bo"}, timeout=RUN_TIMEOUT / 1000)
    assert reply.status_code == 201, reply.text
    assert reply.json() == {"said": "Hello Bo"}
    page.locator("#webhook-panel").get_by_role("button", name="Refresh the requests").click()
    newest = page.locator("#webhook-log .webhook-request").first
    expect(newest).to_have_attribute("data-outcome", "ran")
    expect(newest.locator(".webhook-status")).to_have_text("201")

    # 4. Replay the captured request: a draft run of it, live on the canvas. ---------------------------------
    captured = page.locator('#webhook-log .webhook-request[data-outcome="captured"]')
    with page.expect_response(lambda r: r.url.endswith("/replay")) as replayed:
        captured.get_by_role("button", name="Replay").click()
    assert replayed.value.status == 200, replayed.value.text()
    expect(page.locator("#run-test-label")).to_contain_text("Replay of request")
    link = run_status.get_by_role("link")
    expect(link).not_to_have_text(f"#{captured_execution}")
    replay_execution = int(link.inner_text().lstrip("#"))
    expect(run_status).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT)
    for node in (hook, greet, respond):
        expect(badge(page, node)).to_have_attribute("data-status", "succeeded", timeout=RUN_TIMEOUT)
    [(trigger, trigger_node, input_)] = stored(
        server, "SELECT trigger, trigger_node, input FROM executions WHERE id = ?", replay_execution)
    assert (trigger, trigger_node) == ("replay", hook.node_id)
    replayed_input = input_ if isinstance(input_, dict) else json.loads(input_)
    assert replayed_input["body"] == {"name": "Ada"} and replayed_input["query"] == {"source": "e2e"}

    # 5. Listen, then change one's mind: Stop listening ends the wait. --------------------------------------------
    webhook_panel = page.locator("#webhook-panel")
    webhook_panel.get_by_role("button", name="Listen", exact=True).click()
    wait_until_listening(server, hook.node_id)
    webhook_panel.get_by_role("button", name="Stop listening").click()
    expect(page.locator("#webhook-listen-result .webhook-heard")).to_contain_text("Stopped listening", timeout=RUN_TIMEOUT)
    expect(webhook_panel.get_by_role("button", name="Listen", exact=True)).to_be_enabled()
    assert stored(server, "SELECT listening_until FROM webhooks WHERE node_id = ?", hook.node_id) == [(None,)]

    assert not page_errors.page_errors, "JavaScript errors:\n" + "\n".join(page_errors.page_errors)
    unexpected = [m for m in page_errors.console_errors if "status of 404" not in m]
    assert not unexpected, "console errors:\n" + "\n".join(unexpected)
