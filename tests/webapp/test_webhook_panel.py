"""The Webhook node's panel in the editor (templates/webhooks/) and the run panel that watches an execution the editor
did not start itself (Listen, Replay) — through the web app, its in-process worker and a real database."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from engine.models import Execution, Workflow
from tests.webapp.conftest import Browser
from tests.webapp.webhook_support import activate, build, logged, webhook_of


def manual_flow(browser: Browser, email: str = "owner@example.com") -> tuple[int, dict[str, str]]:
    browser.register(email)
    wid = browser.create_workflow("Watched")
    ids = {"t": browser.add_node(wid, "manual_trigger"), "s": browser.add_node(wid, "set")}
    assert browser.configure(wid, ids["s"], {"name": "S", "fields.name": ["x"], "fields.value": ["1"]}).status_code == 200
    assert browser.connect(wid, ids["t"], ids["s"]).status_code == 201
    return wid, ids


def started(response: Any) -> int:
    assert response.status_code == 200, response.text
    return int(re.search(r"/executions/(\d+)", response.text).group(1))


def test_watch_answers_the_run_panel_of_an_execution_of_the_workflow(browser: Browser) -> None:
    wid, ids = manual_flow(browser)
    execution_id = started(browser.post(f"/workflows/{wid}/run"))
    assert browser.wait_for_execution(execution_id) == "succeeded"

    response = browser.get(f"/workflows/{wid}/executions/{execution_id}/watch", headers={"hx-request": "true"})
    assert response.status_code == 200, response.text
    assert f'hx-ws:connect="/ws/executions/{execution_id}"' in response.text  # the canvas follows it live
    assert f'href="/executions/{execution_id}"' in response.text
    for node_id in ids.values():
        assert f'id="status-{node_id}"' in response.text


def test_watch_is_the_owners_only_and_of_that_workflow_only(browser: Browser, second_browser: Browser) -> None:
    wid, _ = manual_flow(browser)
    other_wid = browser.create_workflow("Another")
    execution_id = started(browser.post(f"/workflows/{wid}/run"))
    assert browser.get(f"/workflows/{other_wid}/executions/{execution_id}/watch").status_code == 404
    assert browser.get(f"/workflows/{wid}/executions/{execution_id + 1000}/watch").status_code == 404

    second_browser.register("intruder@example.com")
    assert second_browser.get(f"/workflows/{wid}/executions/{execution_id}/watch").status_code == 404
    browser.wait_for_execution(execution_id)


# --- the Webhook node's panel ------------------------------------------------------------------------------
def panel(browser: Browser, wid: int, node_id: str) -> Any:
    return browser.get(f"/workflows/{wid}/nodes/{node_id}/webhook", headers={"hx-request": "true"})


def test_the_panel_shows_the_url_methods_state_and_log(browser: Browser, db_call: Any) -> None:
    browser.register("panel@example.com")
    wid, hook, step = build(browser, methods="post, put")
    token = webhook_of(db_call, hook).token

    # the node's side panel loads the webhook section
    node_panel = browser.get(f"/workflows/{wid}/nodes/{hook}", headers={"hx-request": "true"})
    assert f'hx-get="/workflows/{wid}/nodes/{hook}/webhook"' in node_panel.text
    assert "/webhook\"" not in browser.get(f"/workflows/{wid}/nodes/{step}").text  # only on webhook nodes

    html = panel(browser, wid, hook).text
    assert f'value="http://testserver.local/webhook/{token}"' in html
    assert '<span class="webhook-methods">POST, PUT</span>' in html
    assert 'data-state="inactive"' in html and "requests get 404 unless you listen" in html
    assert "No request yet" in html

    refused = browser.client.post(f"/webhook/{token}", json={"n": 1}, headers={"Authorization": "Bearer s3cr3t-value"})
    assert refused.status_code == 404  # inactive: refused, logged
    html = panel(browser, wid, hook).text
    assert "s3cr3t-value" not in html  # headers were masked when logged
    assert '<span class="jt-key">authorization</span>: <span class="jt-str">&#34;***&#34;</span>' in html
    assert html.count('class="webhook-request"') == 1 and 'data-outcome="refused"' in html
    assert '<span class="webhook-status" data-status="404">404</span>' in html

    activate(browser, db_call, wid)
    html = panel(browser, wid, hook).text
    assert 'data-state="active"' in html and "requests run the published version" in html
    reply = browser.client.post(f"/webhook/{token}", json={"name": "Ada"})
    assert reply.status_code == 200, reply.text
    html = panel(browser, wid, hook).text
    assert html.count('class="webhook-request"') == 2
    first = html.index('class="webhook-request"')
    assert html.index('data-outcome="ran"') < html.index('data-outcome="refused"')  # newest first
    assert first < html.index('data-outcome="ran"')
    body = html[html.index('class="data-block webhook-body"'):]
    assert '<span class="jt-key">name</span>: <span class="jt-str">&#34;Ada&#34;</span>' in body  # as a JSON tree


def test_a_custom_path_is_shown_with_the_token_address(browser: Browser, db_call: Any) -> None:
    browser.register("path@example.com")
    wid, hook, _ = build(browser, path="orders/new")
    token = webhook_of(db_call, hook).token
    html = panel(browser, wid, hook).text
    assert 'value="http://testserver.local/webhook/orders/new"' in html
    assert f"http://testserver.local/webhook/{token}</code>" in html


def test_the_panel_listen_and_replay_are_the_owners_only(browser: Browser, second_browser: Browser,
                                                         db_call: Any) -> None:
    browser.register("mine@example.com")
    wid, hook, step = build(browser)
    token = webhook_of(db_call, hook).token
    assert browser.client.post(f"/webhook/{token}", json={"n": 1}).status_code == 404
    [entry] = logged(db_call, hook)
    second_browser.register("theirs@example.com")
    for response in (panel(second_browser, wid, hook),
                     second_browser.post(f"/workflows/{wid}/nodes/{hook}/webhook/listen?seconds=1"),
                     second_browser.post(f"/workflows/{wid}/nodes/{hook}/webhook/requests/{entry.id}/replay")):
        assert response.status_code == 404, response.text
    assert webhook_of(db_call, hook).listening_until is None  # the stranger's listen changed nothing
    # not a webhook node; a request of another webhook
    assert panel(browser, wid, step).status_code == 404
    other_wid, other_hook, _ = build(browser)
    assert browser.post(f"/workflows/{other_wid}/nodes/{other_hook}/webhook/requests/{entry.id}/replay").status_code == 404
    # a listen of 0 s or of more than 120 s is refused with the reason
    for seconds in ("0", "121"):
        response = browser.post(f"/workflows/{wid}/nodes/{hook}/webhook/listen?seconds={seconds}")
        assert response.status_code == 422 and "Listen for 1 to 120 seconds" in response.text


def listen_in_background(browser: Browser, wid: int, node_id: str, seconds: int = 30) -> tuple[threading.Thread, dict[str, Any]]:
    answer: dict[str, Any] = {}

    def run() -> None:
        answer["response"] = browser.post(f"/workflows/{wid}/nodes/{node_id}/webhook/listen?seconds={seconds}")

    thread = threading.Thread(target=run)
    thread.start()
    return thread, answer


def wait_until_listening(db_call: Any, node_id: str, thread: threading.Thread) -> None:
    """Until the listen request has committed ``listening_until`` (a condition on the row, polled)."""
    deadline = time.monotonic() + 20
    while webhook_of(db_call, node_id).listening_until is None:
        assert thread.is_alive(), "the listen request ended before it listened"
        assert time.monotonic() < deadline, "the listen request did not start listening"
        time.sleep(0.01)


def test_listen_captures_the_next_request_and_runs_the_draft(browser: Browser, db_call: Any) -> None:
    browser.register("listen@example.com")
    wid, hook, step = build(browser)
    token = webhook_of(db_call, hook).token
    thread, answer = listen_in_background(browser, wid, hook)
    wait_until_listening(db_call, hook, thread)
    reply = browser.client.post(f"/webhook/{token}?q=1", json={"name": "Lin"})
    assert reply.status_code == 200 and "not active" in reply.json()["message"]
    thread.join(30)
    response = answer["response"]
    assert response.status_code == 200, response.text
    execution_id = reply.json()["execution_id"]
    assert f'data-execution-id="{execution_id}"' in response.text and 'data-outcome="captured"' in response.text
    assert 'id="webhook-log"' in response.text and 'hx-swap-oob="true"' in response.text  # the log, refreshed
    assert webhook_of(db_call, hook).listening_until is None  # one press, one request
    assert browser.wait_for_execution(execution_id) == "succeeded"
    run = db_call(lambda db: db.get(Execution, execution_id))
    assert (run.trigger, run.trigger_node) == ("listen", hook)
    assert run.output == {"Greet": [{"greeting": "Lin"}]}
    # listening stopped: the next request is refused again
    assert browser.client.post(f"/webhook/{token}", json={"name": "Late"}).status_code == 404


def test_listen_hears_a_refused_request_too(browser: Browser, db_call: Any) -> None:
    browser.register("refused@example.com")
    wid, hook, _ = build(browser)
    token = webhook_of(db_call, hook).token
    thread, answer = listen_in_background(browser, wid, hook)
    wait_until_listening(db_call, hook, thread)
    assert browser.client.put(f"/webhook/{token}", json={}).status_code == 405
    thread.join(30)
    response = answer["response"]
    assert response.status_code == 200, response.text
    assert 'data-outcome="refused"' in response.text and 'data-execution-id=""' in response.text
    assert "accepts POST, not PUT" in response.text


def test_listen_ends_when_nothing_comes(browser: Browser, db_call: Any) -> None:
    browser.register("quiet@example.com")
    wid, hook, _ = build(browser)
    response = browser.post(f"/workflows/{wid}/nodes/{hook}/webhook/listen?seconds=1")
    assert response.status_code == 200, response.text
    assert "No request arrived in 1 seconds" in response.text and 'data-execution-id=""' in response.text


def test_replay_runs_the_draft_with_the_logged_request(browser: Browser, db_call: Any) -> None:
    browser.register("replay@example.com")
    wid, hook, step = build(browser)
    activate(browser, db_call, wid)
    token = webhook_of(db_call, hook).token
    assert browser.client.post(f"/webhook/{token}?x=1", json={"name": "Max"}).json() == {"greeting": "Max"}
    entry = logged(db_call, hook)[-1]
    # the draft changes after the request: the replay runs the draft, not the published version
    assert browser.configure(wid, step, {"name": "Greet", "fields.name": ["greeting"],
                                         "fields.value": ["hi {{ item.body.name }} {{ item.query.x }}"]}).status_code == 200
    response = browser.post(f"/workflows/{wid}/nodes/{hook}/webhook/requests/{entry.id}/replay")
    execution_id = started(response)
    assert "Replay of request" in response.text and f'hx-ws:connect="/ws/executions/{execution_id}"' in response.text
    assert browser.wait_for_execution(execution_id) == "succeeded"
    run = db_call(lambda db: db.get(Execution, execution_id))
    assert (run.trigger, run.trigger_node) == ("replay", hook)
    assert run.input == entry.input
    assert run.output == {"Greet": [{"greeting": "hi Max 1"}]}


def test_replay_of_an_invalid_draft_lists_the_problems(browser: Browser, db_call: Any) -> None:
    browser.register("badreplay@example.com")
    wid, hook, _ = build(browser)
    token = webhook_of(db_call, hook).token
    browser.client.post(f"/webhook/{token}", json={})
    entry = logged(db_call, hook)[-1]
    browser.add_node(wid, "http_request")  # no URL: the draft does not validate
    response = browser.post(f"/workflows/{wid}/nodes/{hook}/webhook/requests/{entry.id}/replay")
    assert response.status_code == 422 and 'data-status="invalid"' in response.text


def test_stop_listening_ends_the_wait_and_refuses_requests_again(browser: Browser, second_browser: Browser,
                                                                 db_call: Any) -> None:
    browser.register("stop@example.com")
    wid, hook, _ = build(browser)
    token = webhook_of(db_call, hook).token
    thread, answer = listen_in_background(browser, wid, hook, seconds=120)
    wait_until_listening(db_call, hook, thread)
    second_browser.register("stranger@example.com")
    assert second_browser.post(f"/workflows/{wid}/nodes/{hook}/webhook/listen/stop").status_code == 404
    assert webhook_of(db_call, hook).listening_until is not None  # a stranger cannot stop it

    assert browser.post(f"/workflows/{wid}/nodes/{hook}/webhook/listen/stop").status_code == 204
    thread.join(30)
    response = answer["response"]
    assert response.status_code == 200, response.text
    assert "Stopped listening" in response.text and 'data-execution-id=""' in response.text
    assert webhook_of(db_call, hook).listening_until is None
    assert browser.client.post(f"/webhook/{token}", json={}).status_code == 404


def test_api_clients_get_json(browser: Browser, db_call: Any) -> None:
    browser.register("json@example.com")
    wid, hook, _ = build(browser, set_value="{{ item.method }}")  # a refused request's body was never read: null
    token = webhook_of(db_call, hook).token
    json_headers = {"accept": "application/json"}
    browser.client.post(f"/webhook/{token}", json={"a": 1})
    view = browser.get(f"/workflows/{wid}/nodes/{hook}/webhook", headers=json_headers).json()
    assert view["url"] == f"http://testserver.local/webhook/{token}" and view["state"] == "inactive"
    assert view["methods"] == ["POST"] and view["listening"] is False
    [entry] = view["requests"]
    assert (entry["method"], entry["status"], entry["outcome"], entry["input"]["query"]) == ("POST", 404, "refused", {})

    heard = browser.post(f"/workflows/{wid}/nodes/{hook}/webhook/listen?seconds=1", htmx=False, headers=json_headers)
    assert heard.json() == {"request": None, "stopped": False}

    replay = browser.post(f"/workflows/{wid}/nodes/{hook}/webhook/requests/{entry['id']}/replay", htmx=False,
                          headers=json_headers)
    assert replay.status_code == 201, replay.text
    assert browser.wait_for_execution(replay.json()["execution_id"]) == "succeeded"

    browser.add_node(wid, "http_request")  # no URL: the draft does not validate
    refused = browser.post(f"/workflows/{wid}/nodes/{hook}/webhook/requests/{entry['id']}/replay", htmx=False,
                           headers=json_headers)
    assert refused.status_code == 422 and refused.headers["content-type"].startswith("application/problem+json")
    assert any("url" in problem for problem in refused.json()["problems"])


def test_the_url_uses_the_public_url_when_set(app_factory: Any) -> None:
    from litestar.testing import TestClient

    # (http: over https the session cookies would be Secure, and this client speaks plain http)
    with TestClient(app=app_factory(public_url="http://hooks.example.com:8080")) as client:
        browser = Browser(client)
        browser.register("public@example.com")
        wid = browser.create_workflow("Public")
        hook = browser.add_node(wid, "webhook_trigger")
        view = browser.get(f"/workflows/{wid}/nodes/{hook}/webhook", headers={"accept": "application/json"}).json()
        assert view["url"].startswith("http://hooks.example.com:8080/webhook/")


def test_the_state_says_not_published_and_paused(browser: Browser, db_call: Any) -> None:
    browser.register("states@example.com")
    wid, hook, _ = build(browser)
    activate(browser, db_call, wid)
    later = browser.add_node(wid, "webhook_trigger", x=0, y=300)  # added to the draft after activation
    assert 'data-state="unpublished"' in panel(browser, wid, later).text
    assert 'data-state="active"' in panel(browser, wid, hook).text

    async def pause(db: Any) -> None:
        await db.execute(update(Workflow).where(Workflow.id == wid).values(
            paused_until=datetime.now(UTC) + timedelta(minutes=5)))
        await db.commit()

    db_call(pause)
    html = panel(browser, wid, hook).text
    assert 'data-state="paused"' in html and "requests get 503 with Retry-After" in html


def test_listening_to_an_active_workflow_shows_its_published_run(browser: Browser, db_call: Any) -> None:
    browser.register("activelisten@example.com")
    wid, hook, _ = build(browser)
    activate(browser, db_call, wid)
    token = webhook_of(db_call, hook).token
    thread, answer = listen_in_background(browser, wid, hook)
    wait_until_listening(db_call, hook, thread)
    assert browser.client.post(f"/webhook/{token}", json={"name": "Pub"}).json() == {"greeting": "Pub"}
    thread.join(30)
    response = answer["response"]
    assert response.status_code == 200, response.text
    assert 'data-outcome="ran"' in response.text
    execution_id = int(re.search(r'class="webhook-heard"[^>]*data-execution-id="(\d+)"', response.text).group(1))
    run = db_call(lambda db: db.get(Execution, execution_id))
    assert (run.trigger, run.trigger_node) == ("webhook", hook)  # the published version, as every request
    watch = browser.get(f"/workflows/{wid}/executions/{execution_id}/watch", headers={"hx-request": "true"})
    assert "Webhook request (the published version)" in watch.text
