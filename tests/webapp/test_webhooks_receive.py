"""The webhook route: an active workflow runs its published version per request; the response modes; bodies;
the request log; inactive workflows answer 404; methods not accepted 405."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from engine.models import Execution
from tests.webapp.conftest import Browser
from tests.webapp.webhook_support import activate, build, deactivate, logged, slow_build, url_of


def execution(db_call: Any, execution_id: int) -> Execution:
    return db_call(lambda db: db.get(Execution, execution_id))


def test_last_node_mode_answers_with_the_last_nodes_output(browser: Browser, db_call: Any) -> None:
    browser.register("hook-last@example.com")
    wid, hook, _ = build(browser)
    activate(browser, db_call, wid)
    response = browser.client.post(url_of(db_call, hook), json={"name": "Ada"})
    assert response.status_code == 200, response.text
    assert response.json() == {"greeting": "Ada"}
    run = db_call(lambda db: db.scalar(select(Execution).where(Execution.workflow_id == wid)))
    assert (run.trigger, run.trigger_node, run.status) == ("webhook", hook, "succeeded")
    assert run.input["body"] == {"name": "Ada"} and run.input["method"] == "POST"
    entry = logged(db_call, hook)[-1]
    assert (entry.outcome, entry.execution_id, entry.method) == ("ran", run.id, "POST")
    deadline = time.monotonic() + 10  # the answer is written to the log after it is sent
    while logged(db_call, hook)[-1].status != 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert logged(db_call, hook)[-1].response == {"json": {"greeting": "Ada"}}


def test_immediately_answers_202_with_the_execution_id(browser: Browser, db_call: Any) -> None:
    browser.register("hook-now@example.com")
    wid, hook, _ = build(browser, response_mode="immediately")
    activate(browser, db_call, wid)
    response = browser.client.post(url_of(db_call, hook), json={"name": "Bo"})
    assert response.status_code == 202, response.text
    execution_id = response.json()["execution_id"]
    assert browser.wait_for_execution(execution_id) == "succeeded"
    run = execution(db_call, execution_id)
    assert run.output == {"Greet": [{"greeting": "Bo"}]}
    assert logged(db_call, hook)[-1].status == 202


def test_all_items_and_a_chosen_node(browser: Browser, db_call: Any) -> None:
    browser.register("hook-all@example.com")
    wid, hook, _ = build(browser, response_data="all_items", response_node="Webhook")
    activate(browser, db_call, wid)
    response = browser.client.post(url_of(db_call, hook) + "?a=1&a=2&b=x", json={"name": "Cy"},
                                   headers={"X-Custom": "yes"})
    assert response.status_code == 200, response.text
    [item] = response.json()
    assert item["query"] == {"a": ["1", "2"], "b": "x"}
    assert item["headers"]["x-custom"] == "yes" and item["body"] == {"name": "Cy"}


def test_a_time_limit_answers_202_and_the_run_goes_on(browser: Browser, db_call: Any) -> None:
    browser.register("hook-slow@example.com")
    _, hook = slow_build(browser, db_call)
    response = browser.client.post(url_of(db_call, hook), json={"name": "Di"})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "running" and "0.2 s" in body["message"]
    assert browser.wait_for_execution(body["execution_id"]) == "succeeded"


def test_a_failed_workflow_answers_500_naming_the_execution(browser: Browser, db_call: Any) -> None:
    browser.register("hook-fail@example.com")
    wid, hook, _ = build(browser, set_value="{{ 1 / 0 }}")
    activate(browser, db_call, wid)
    response = browser.client.post(url_of(db_call, hook), json={})
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["execution_id"] > 0 and "failed" in response.json()["detail"]


def test_bodies_form_text_and_empty(browser: Browser, db_call: Any) -> None:
    browser.register("hook-bodies@example.com")
    wid, hook, _ = build(browser, set_value="x", response_node="Webhook", methods="POST, PUT, GET")
    activate(browser, db_call, wid)
    url = url_of(db_call, hook)
    form = browser.client.post(url, data={"files": "/etc/passwd", "filepath": "/etc/shadow", "n": "1"})
    assert form.status_code == 200, form.text
    assert form.json()["body"] == {"files": "/etc/passwd", "filepath": "/etc/shadow", "n": "1"}
    text = browser.client.put(url, content="hello ✓".encode(), headers={"content-type": "text/plain"})
    assert text.json()["body"] == "hello ✓" and text.json()["method"] == "PUT"
    empty = browser.client.get(url)
    assert empty.status_code == 200 and empty.json()["body"] is None and empty.json()["method"] == "GET"
    odd = browser.client.post(url, content=b'{"not": "declared"}', headers={"content-type": "application/x-thing"})
    assert odd.json()["body"] == '{"not": "declared"}'


def test_bad_json_is_400_and_logged(browser: Browser, db_call: Any) -> None:
    browser.register("hook-badjson@example.com")
    wid, hook, _ = build(browser)
    activate(browser, db_call, wid)
    url = url_of(db_call, hook)
    broken = browser.client.post(url, content=b'{"a": ', headers={"content-type": "application/json"})
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["detail"]
    deep = browser.client.post(url, content=b"[" * 100 + b"]" * 100, headers={"content-type": "application/json"})
    assert deep.status_code == 400 and "nested more than 64 levels" in deep.json()["detail"]
    not_utf8 = browser.client.post(url, content=b'"\xff"', headers={"content-type": "application/json"})
    assert not_utf8.status_code == 400 and "UTF-8" in not_utf8.json()["detail"]
    assert [e.outcome for e in logged(db_call, hook)] == ["rejected"] * 3
    assert db_call(lambda db: db.scalar(select(Execution.id).where(Execution.workflow_id == wid))) is None


def test_methods_not_accepted_get_405_with_allow(browser: Browser, db_call: Any) -> None:
    browser.register("hook-405@example.com")
    wid, hook, _ = build(browser, methods="POST, PATCH")
    activate(browser, db_call, wid)
    response = browser.client.delete(url_of(db_call, hook))
    assert response.status_code == 405 and response.headers["allow"] == "POST, PATCH"
    assert logged(db_call, hook)[-1].outcome == "refused"


def test_inactive_and_unknown_webhooks_answer_404(browser: Browser, db_call: Any) -> None:
    browser.register("hook-404@example.com")
    wid, hook, _ = build(browser)
    url = url_of(db_call, hook)
    inactive = browser.client.post(url, json={})
    assert inactive.status_code == 404 and "not active" in inactive.json()["detail"]
    assert logged(db_call, hook)[-1].outcome == "refused"
    activate(browser, db_call, wid)
    assert browser.client.post(url, json={"name": "x"}).status_code == 200
    deactivate(browser, wid)
    assert browser.client.post(url, json={}).status_code == 404
    assert browser.client.post("/webhook/nothing-here", json={}).status_code == 404
    assert browser.client.post("/webhook/", json={}).status_code == 404
    assert browser.client.post("/webhook/" + "a" * 5000, json={}).status_code == 404


def test_custom_path_is_unique_per_instance(browser: Browser, second_browser: Browser, db_call: Any) -> None:
    browser.register("hook-path@example.com")
    wid, hook, _ = build(browser, path="/orders/new/")
    activate(browser, db_call, wid)
    assert browser.client.post("/webhook/orders/new", json={"name": "P"}).json() == {"greeting": "P"}
    assert browser.client.post(url_of(db_call, hook), json={"name": "T"}).json() == {"greeting": "T"}
    second_browser.register("hook-path-2@example.com")
    other = second_browser.create_workflow()
    node = second_browser.add_node(other, "webhook_trigger")
    taken = second_browser.configure(other, node, {**_defaults(), "path": "orders/new"})
    assert taken.status_code == 422 and "already used" in taken.text
    bad = second_browser.configure(other, node, {**_defaults(), "path": "../etc"})
    assert bad.status_code == 422


def _defaults() -> dict[str, str]:
    from tests.webapp.webhook_support import WEBHOOK_DEFAULTS

    return dict(WEBHOOK_DEFAULTS)


def test_a_webhook_runs_only_its_owners_workflow(browser: Browser, second_browser: Browser, db_call: Any) -> None:
    browser.register("hook-own-a@example.com")
    wid, hook, _ = build(browser)
    activate(browser, db_call, wid)
    second_browser.register("hook-own-b@example.com")
    other, other_hook, _ = build(second_browser, set_value="B")
    activate(second_browser, db_call, other)
    assert browser.client.post(url_of(db_call, hook), json={"name": "A"}).json() == {"greeting": "A"}
    assert browser.client.post(url_of(db_call, other_hook), json={"name": "A"}).json() == {"greeting": "B"}
    runs = db_call(lambda db: db.scalars(select(Execution).order_by(Execution.id)))
    assert [(r.workflow_id, r.owner_id == r.owner_id) for r in runs] == [(wid, True), (other, True)]


def test_the_log_masks_secret_headers_and_keeps_the_newest_50(browser: Browser, db_call: Any) -> None:
    browser.register("hook-log@example.com")
    wid, hook, _ = build(browser, response_mode="immediately")
    activate(browser, db_call, wid)
    url = url_of(db_call, hook)
    secret_headers = {"authorization": "Bearer abc", "cookie": "session=s", "x-api-token": "t", "x-my-secret": "s",
                      "x-signature": "sig", "x-plain": "visible"}
    assert browser.client.post(url + "?q=1", json={"name": "first"}, headers=secret_headers).status_code == 202
    first = logged(db_call, hook)[0]
    headers = first.input["headers"]
    assert all(headers[name] == "***" for name in secret_headers if name != "x-plain")
    assert headers["x-plain"] == "visible" and first.input["query"] == {"q": "1"}
    for i in range(59):
        assert browser.client.post(url, json={"name": str(i)}).status_code == 202
    deadline = time.monotonic() + 20  # trimmed after the answers were sent
    while len(logged(db_call, hook)) != 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    kept = logged(db_call, hook)
    assert len(kept) == 50 and kept[-1].input["body"] == {"name": "58"} and kept[0].input["body"] == {"name": "9"}


def test_a_deleted_nodes_path_is_free_again_unless_a_running_trigger_holds_it(browser: Browser, db_call: Any) -> None:
    browser.register("hook-path-free@example.com")
    wid = browser.create_workflow()
    node = browser.add_node(wid, "webhook_trigger")
    assert browser.configure(wid, node, {**_defaults(), "path": "free/me"}).status_code == 200
    assert browser.delete(f"/workflows/{wid}/nodes/{node}").status_code == 204
    other = browser.add_node(wid, "webhook_trigger")
    assert browser.configure(wid, other, {**_defaults(), "path": "free/me"}).status_code == 200

    live, hook, _ = build(browser, path="held")  # active: its published node keeps the path after a delete
    activate(browser, db_call, live)
    assert browser.delete(f"/workflows/{live}/nodes/{hook}").status_code == 204
    third = browser.add_node(wid, "webhook_trigger", x=300)
    taken = browser.configure(wid, third, {**_defaults(), "path": "held"})
    assert taken.status_code == 422 and "already used" in taken.text
    assert browser.client.post("/webhook/held", json={"name": "Still"}).json() == {"greeting": "Still"}


def test_head_and_options_when_listed(browser: Browser, db_call: Any) -> None:
    browser.register("hook-head@example.com")
    wid, hook, _ = build(browser, set_value="x", methods="HEAD, OPTIONS", response_mode="immediately")
    activate(browser, db_call, wid)
    head = browser.client.head(url_of(db_call, hook))
    assert head.status_code == 202 and head.content == b""
    assert browser.client.options(url_of(db_call, hook)).status_code == 202
    assert [e.method for e in logged(db_call, hook)] == ["HEAD", "OPTIONS"]
