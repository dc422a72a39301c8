"""The Sub-workflow node: runs another workflow of the owner inline; loops refused before the run."""

from __future__ import annotations

import re
import time
from typing import Any

from sqlalchemy import select

from engine.models import Execution
from tests.webapp.conftest import Browser


def simple(browser: Browser, name: str, field: str) -> int:
    wid = browser.create_workflow(name)
    trigger = browser.add_node(wid, "manual_trigger")
    node = browser.add_node(wid, "set")
    browser.configure(wid, node, {"name": f"{name} set", "fields.name": [field], "fields.value": [f"{name}"],
                                  "keep_existing": "on"})
    browser.connect(wid, trigger, node)
    return wid


def caller(browser: Browser, name: str, target: int) -> tuple[int, str]:
    wid = simple(browser, name, "caller")
    nodes = re.findall(r'data-node-id="([0-9a-f]+)"', browser.get(f"/workflows/{wid}").text)
    sub = browser.add_node(wid, "sub_workflow")
    assert browser.configure(wid, sub, {"name": "Call", "workflow_id": str(target)}).status_code == 200
    browser.connect(wid, nodes[1], sub)
    return wid, sub


def test_sub_workflow_runs_inline_and_returns_its_items(browser: Browser, db_call: Any) -> None:
    browser.register("sub@example.com")
    inner = simple(browser, "Inner", "inner")
    outer, _ = caller(browser, "Outer", inner)
    response = browser.post(f"/workflows/{outer}/run")
    execution_id = int(re.search(r"/executions/(\d+)", response.text).group(1))
    assert browser.wait_for_execution(execution_id) == "succeeded"
    execution = db_call(lambda db: db.get(Execution, execution_id))
    assert execution.output == {"Call": [{"caller": "Outer", "inner": "Inner"}]}
    subs = db_call(lambda db: db.scalars(select(Execution).where(Execution.trigger == "sub_workflow")))
    (sub,) = list(subs)
    assert sub.workflow_id == inner and sub.status == "succeeded"


def test_calls_that_loop_or_leave_the_owner_are_refused_before_the_run(browser: Browser, second_browser: Browser,
                                                                       db_call: Any) -> None:
    browser.register("loops@example.com")
    a = simple(browser, "A", "a")
    b, b_call = caller(browser, "B", a)
    a_nodes = re.findall(r'data-node-id="([0-9a-f]+)"', browser.get(f"/workflows/{a}").text)
    a_call = browser.add_node(a, "sub_workflow")
    browser.configure(a, a_call, {"name": "Back", "workflow_id": str(b)})
    browser.connect(a, a_nodes[1], a_call)
    refused = browser.post(f"/workflows/{a}/run")
    assert refused.status_code == 422 and "would call itself" in refused.text and "workflow_id" in refused.text
    self_call = browser.configure(b, b_call, {"name": "Call", "workflow_id": str(b)})
    assert self_call.status_code == 200
    assert "would call itself" in browser.post(f"/workflows/{b}/run").text

    second_browser.register("elsewhere@example.com")
    theirs = simple(second_browser, "Theirs", "t")
    browser.configure(b, b_call, {"name": "Call", "workflow_id": str(theirs)})
    foreign = browser.post(f"/workflows/{b}/run")
    assert foreign.status_code == 422 and f"no workflow {theirs} of yours" in foreign.text
    assert db_call(lambda db: db.scalar(select(Execution.id).where(Execution.workflow_id == theirs))) is None


def test_a_running_sub_workflow_shares_and_renews_its_callers_lease(browser: Browser, db_call: Any) -> None:
    """So that when the caller's worker dies, the reconciler can tell the sub-execution is running nowhere."""
    browser.register("sublease@example.com")
    inner = browser.create_workflow("Slow inner")
    trigger = browser.add_node(inner, "manual_trigger")
    pause = browser.add_node(inner, "delay")
    browser.configure(inner, pause, {"name": "Pause", "seconds": "2.5"})
    browser.connect(inner, trigger, pause)
    outer, _ = caller(browser, "Outer", inner)
    execution_id = int(re.search(r"/executions/(\d+)", browser.post(f"/workflows/{outer}/run").text).group(1))

    async def sub_and_parent(db: Any) -> tuple[Execution | None, Execution]:
        sub = await db.scalar(select(Execution).where(Execution.trigger == "sub_workflow"))
        return sub, await db.get(Execution, execution_id)

    seen: list[float] = []
    deadline = time.monotonic() + 20
    while len(set(seen)) < 2:  # two different lease_until values while the sub-execution runs: renewed
        assert time.monotonic() < deadline, f"the sub-execution's lease was not renewed: {seen}"
        sub, parent = db_call(sub_and_parent)
        if sub is not None and sub.status == "running":
            assert sub.lease_token is not None and sub.lease_token == parent.lease_token
            seen.append(sub.lease_until)
        time.sleep(0.1)
    assert browser.wait_for_execution(execution_id) == "succeeded"
