"""Redaction: the ``Redactor`` itself, and the run loop passing everything it stores, publishes and logs
through the run's redactor — node outputs and inputs, errors (message, data, traceback), node logs,
events, execution changes and the execution's outcome — while the items handed to the next node stay
as the node made them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import pytest

from engine.contract import Item, NodeContext, NodeResult, NodeType
from engine.credentials.redaction import REDACTED, Redactor
from engine.errors import NodeError
from engine.events import MemorySink
from engine.graph import ConnectionSpec, Graph, NodeSpec
from engine.policy import NodeSettings, RetryPolicy
from engine.registry import Registry
from engine.runner import Run, execute
from engine.store import MemoryRunStore
from nodes import NODE_TYPES

SECRET = "sk-live-4f9a2b7c"


# ---- the Redactor ----------------------------------------------------------------------------------------

def test_an_empty_redactor_returns_the_very_same_object() -> None:
    value = {"a": [SECRET]}
    assert Redactor().redact(value) is value
    assert not Redactor()


def test_occurrences_inside_strings_keys_and_nested_lists_are_replaced() -> None:
    redactor = Redactor([SECRET])
    value = {"header": f"Bearer {SECRET}", SECRET: [1, {"deep": (SECRET, 2.5, None, True)}], "n": 7}
    assert redactor.redact(value) == {"header": f"Bearer {REDACTED}",
                                      REDACTED: [1, {"deep": [REDACTED, 2.5, None, True]}], "n": 7}


def test_a_value_holding_a_secret_is_copied_never_changed_in_place() -> None:
    redactor = Redactor([SECRET])
    item = {"token": SECRET, "other": {"x": 1}}
    redacted = redactor.redact(item)
    assert item == {"token": SECRET, "other": {"x": 1}}
    assert redacted["token"] == REDACTED
    clean = {"x": [1, 2]}
    assert redactor.redact(clean) is clean  # nothing to hide: not even copied


def test_short_values_are_not_registered_and_non_strings_are_ignored() -> None:
    redactor = Redactor(["abc", "", 12345])  # type: ignore[list-item]
    assert not redactor
    assert redactor.redact("abc 12345") == "abc 12345"
    redactor.add("abcd")
    assert redactor.redact("xabcdx") == f"x{REDACTED}x"


def test_the_longest_secret_wins_where_one_contains_another() -> None:
    redactor = Redactor(["pass", "password-long"])
    assert redactor.redact("password-long and pass") == f"{REDACTED} and {REDACTED}"


def test_secret_fields_of_a_credential_are_walked() -> None:
    redactor = Redactor()
    redactor.add({"access_token": "at-123456", "nested": ["rt-654321"], "expires": 3600})
    assert redactor.redact("at-123456/rt-654321/3600") == f"{REDACTED}/{REDACTED}/3600"


@pytest.mark.parametrize("secret", ['quo"te\\back', "ünïcødé-sécret", "tab\tnew\nline", "<script>&amp;"])
def test_secrets_that_json_escapes_are_still_found(secret: str) -> None:
    redactor = Redactor([secret])
    assert redactor.redact({"k": [f"x{secret}y"]}) == {"k": [f"x{REDACTED}y"]}


def test_values_that_are_not_json_are_walked() -> None:
    marker = object()
    redactor = Redactor([SECRET])
    assert redactor.redact({"obj": marker, "s": SECRET}) == {"obj": marker, "s": REDACTED}


def test_structs_dataclasses_and_sets_are_walked_as_json() -> None:
    @dataclass
    class Sent:
        header: str

    class Request(msgspec.Struct):
        token: str

    redactor = Redactor([SECRET])
    value = {"sent": Sent(f"Bearer {SECRET}"), "request": Request(SECRET), "tried": {SECRET}}
    assert redactor.redact(value) == {"sent": {"header": f"Bearer {REDACTED}"}, "request": {"token": REDACTED},
                                      "tried": [REDACTED]}


def test_repr_shows_no_value() -> None:
    assert SECRET not in repr(Redactor([SECRET]))


# ---- the run loop ----------------------------------------------------------------------------------------

class LeakConfig(msgspec.Struct):
    fail: bool = False
    attempts_failing: int = 0


class Leak(NodeType):
    """Puts the secret everywhere a node can: its output, its log (also with an exception), its error
    message and the error's data."""

    type_name = "leak"
    title = "Leak"
    Config = LeakConfig

    async def run(self, ctx: NodeContext, config: LeakConfig, items: list[Item]) -> NodeResult:
        ctx.logger.info("calling with key %s", SECRET)
        try:
            raise ValueError(f"inner {SECRET}")
        except ValueError:
            ctx.logger.exception("caught")
        if config.fail or ctx.attempt <= config.attempts_failing:
            raise NodeError(f"refused key {SECRET}", data={"sent": {"Authorization": f"Bearer {SECRET}"}, SECRET: 1})
        return NodeResult.main([{"token": SECRET, "echo": f"key={SECRET}"}])


class Crash(NodeType):
    """A bug in node code (not an expected error): its traceback is kept, and holds the secret."""

    type_name = "crash"
    title = "Crash"

    async def run(self, ctx: NodeContext, config: Any, items: list[Item]) -> NodeResult:
        raise RuntimeError(f"unexpected {SECRET}")


class Check(NodeType):
    """Passes its input on, noting whether the secret reached it unredacted (data flows as made)."""

    type_name = "check"
    title = "Check"

    async def run(self, ctx: NodeContext, config: Any, items: list[Item]) -> NodeResult:
        return NodeResult.main([{"saw_secret": item.get("token") == SECRET, "seen": item.get("token")}
                                for item in items])


registry = Registry([*NODE_TYPES, Leak, Crash, Check])


def graph(leak_type: str = "leak", settings: NodeSettings | None = None, **config: Any) -> Graph:
    nodes = [NodeSpec(id="t", type="manual_trigger", name="Start"),
             NodeSpec(id="l", type=leak_type, name="Leak", config=config, settings=settings or NodeSettings()),
             NodeSpec(id="c", type="check", name="Check")]
    return Graph(nodes=nodes, connections=[ConnectionSpec(source="t", target="l"), ConnectionSpec(source="l", target="c")])


async def run(graph: Graph, store: MemoryRunStore, sink: MemorySink, redactor: Redactor | None = None) -> Any:
    async with httpx.AsyncClient() as http:
        return await execute(Run(1, 1, graph, registry, store, sink, http, owner_id=1,
                                 redactor=redactor if redactor is not None else Redactor([SECRET])))


def everything_stored(store: MemoryRunStore, sink: MemorySink) -> str:
    runs = [msgspec.to_builtins(vars(r)) for r in store.runs[1].values()]
    published = [e.to_builtins() for e in sink.events] + [msgspec.to_builtins(c) for c in sink.changes]
    return msgspec.json.encode([runs, store.events, store.outcomes, published]).decode()


async def test_outputs_inputs_logs_and_outcome_are_stored_redacted_but_passed_on_as_made() -> None:
    store, sink = MemoryRunStore(), MemorySink()
    outcome = await run(graph(), store, sink)
    assert outcome.status == "succeeded"
    assert outcome.output["Check"] == [{"saw_secret": True, "seen": SECRET}]  # the next node got the real value
    leak, check = store.attempts(1, "l")[-1], store.attempts(1, "c")[-1]
    assert leak.output == {"main": [{"token": REDACTED, "echo": f"key={REDACTED}"}]}
    assert check.input == [{"token": REDACTED, "echo": f"key={REDACTED}"}]
    assert check.output == {"main": [{"saw_secret": True, "seen": REDACTED}]}
    assert [e["message"].splitlines()[0] for e in leak.logs or []] == [f"calling with key {REDACTED}", "caught"]
    assert f"ValueError: inner {REDACTED}" in (leak.logs or [])[1]["message"]
    assert store.outcomes[1][1] == {"Check": [{"saw_secret": True, "seen": REDACTED}]}
    assert SECRET not in everything_stored(store, sink)


async def test_a_node_error_its_data_events_and_changes_are_redacted() -> None:
    store, sink = MemoryRunStore(), MemorySink()
    outcome = await run(graph(fail=True), store, sink)
    assert outcome.status == "failed"
    error = store.attempts(1, "l")[-1].error or {}
    assert error["message"] == f"refused key {REDACTED}"
    assert error["data"] == {"sent": {"Authorization": f"Bearer {REDACTED}"}, REDACTED: 1}
    assert outcome.error["message"] == f"refused key {REDACTED}"  # what the worker logs
    failed = [e for e in sink.events if e.type == "node.failed"]
    assert failed[0].summary == f"refused key {REDACTED}"
    assert any(c.error and REDACTED in c.error for c in sink.changes)
    assert SECRET not in everything_stored(store, sink)


async def test_retried_attempts_and_the_retry_event_are_redacted() -> None:
    store, sink = MemoryRunStore(), MemorySink()
    settings = NodeSettings(retry=RetryPolicy(max_attempts=2, initial_delay=0, jitter=False, retry_on=["other"]))
    assert (await run(graph(settings=settings, attempts_failing=1), store, sink)).status == "succeeded"
    first = store.attempts(1, "l")[0]
    assert first.status == "failed" and first.error and first.error["message"] == f"refused key {REDACTED}"
    retrying = [e for e in sink.events if e.type == "node.retrying"]
    assert retrying and REDACTED in (retrying[0].summary or "")
    assert SECRET not in everything_stored(store, sink)


async def test_the_traceback_of_a_bug_is_redacted() -> None:
    store, sink = MemoryRunStore(), MemorySink()
    outcome = await run(graph("crash"), store, sink)
    error = store.attempts(1, "l")[-1].error or {}
    assert outcome.status == "failed" and f"RuntimeError: unexpected {REDACTED}" in error["traceback"]
    assert SECRET not in everything_stored(store, sink)


async def test_the_process_log_gets_redacted_records(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await run(graph(fail=True), MemoryRunStore(), MemorySink())
    text = "\n".join(caplog.text.splitlines()) + "".join(r.getMessage() for r in caplog.records)
    assert "calling with key" in text and REDACTED in text
    assert SECRET not in text


async def test_without_secrets_the_run_stores_what_the_nodes_made() -> None:
    store, sink = MemoryRunStore(), MemorySink()
    assert (await run(graph(), store, sink, redactor=Redactor())).status == "succeeded"
    assert store.attempts(1, "l")[-1].output == {"main": [{"token": SECRET, "echo": f"key={SECRET}"}]}
