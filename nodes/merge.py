"""Merge: wait for both inputs (those still live), then join their items in one of four ways."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec

from engine.contract import Item, NodeContext, NodeResult, NodeType
from engine.errors import NodeError
from nodes.conditions import field_value, is_missing

MergeMode = Literal["append", "combine_by_position", "combine_by_key", "wait_pass_first"]
MAX_OUTPUT_ITEMS = 100_000
"""A key join can multiply items (every a × every b with the same key); beyond this it fails."""


class MergeConfig(msgspec.Struct, forbid_unknown_fields=True):
    mode: Annotated[MergeMode, msgspec.Meta(
        title="Mode",
        description="append: a's items, then b's. combine_by_position: item i of a merged with item i of b "
                    "(b wins on conflicting fields; extra items pass unmerged). combine_by_key: items of a and b "
                    "whose keys are equal, merged (inner join). wait_pass_first: wait for both, pass a's items.")] = "append"
    key_a: Annotated[str, msgspec.Meta(
        title="Key in input a", description="combine_by_key: dotted field of the items on input a, e.g. id.")] = ""
    key_b: Annotated[str, msgspec.Meta(
        title="Key in input b", description="combine_by_key: dotted field of the items on input b, e.g. user.id.")] = ""
    keep_unmatched: Annotated[bool, msgspec.Meta(
        title="Keep unmatched items",
        description="combine_by_key: also pass items without a partner, unmerged (otherwise they are dropped).")] = False

    def problems(self) -> dict[str, str]:
        if self.mode != "combine_by_key":
            return {}
        return {name: "Required for combine_by_key: a dotted field, e.g. id."
                for name in ("key_a", "key_b") if not getattr(self, name).strip()}


class Merge(NodeType):
    """Joins the items of inputs ``a`` and ``b``.

    The run loop starts a node once every predecessor has settled (ran or was skipped), so Merge
    waits for all of its inputs that are still live. When only one input is live (the other
    branch was skipped), Merge passes that input's items unchanged, whatever the mode.
    """

    type_name = "merge"
    version = 1
    pure = True
    title = "Merge"
    category = "Logic"
    description = "Wait for two branches and join their items."
    Config = MergeConfig
    inputs = ("a", "b")
    outputs = ("main",)

    async def run(self, ctx: NodeContext, config: MergeConfig, items: list[Item]) -> NodeResult:
        if not all(port in ctx.live_inputs for port in self.inputs):
            return NodeResult.main(list(items))
        a, b = ctx.inputs.get("a", []), ctx.inputs.get("b", [])
        return NodeResult.main(_MODES[config.mode](config, a, b))


def _append(config: MergeConfig, a: list[Item], b: list[Item]) -> list[Item]:
    return [*a, *b]


def _by_position(config: MergeConfig, a: list[Item], b: list[Item]) -> list[Item]:
    shared = min(len(a), len(b))
    return [{**a[i], **b[i]} for i in range(shared)] + a[shared:] + b[shared:]


def _key(item: Item, path: str) -> tuple[str, Any] | None:
    """A hashable key; equal only for the same JSON type and value (1 matches 1.0, not "1" or true)."""
    value = field_value(item, path)
    if is_missing(value):
        return None
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, (int, float)):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    return ("json", msgspec.json.encode(value, order="sorted"))


def _by_key(config: MergeConfig, a: list[Item], b: list[Item]) -> list[Item]:
    index: dict[tuple[str, Any], list[int]] = {}
    for j, item in enumerate(b):
        if (key := _key(item, config.key_b)) is not None:
            index.setdefault(key, []).append(j)
    out: list[Item] = []
    matched: set[int] = set()
    for item in a:
        key = _key(item, config.key_a)
        partners = index.get(key, []) if key is not None else []
        out += [{**item, **b[j]} for j in partners]
        matched.update(partners)
        if not partners and config.keep_unmatched:
            out.append(item)
        if len(out) > MAX_OUTPUT_ITEMS:
            raise NodeError(f"combine_by_key produced more than {MAX_OUTPUT_ITEMS:,} items: "
                            f"are the keys {config.key_a!r} / {config.key_b!r} unique enough?")
    if config.keep_unmatched:
        out += [item for j, item in enumerate(b) if j not in matched]
    return out


def _pass_first(config: MergeConfig, a: list[Item], b: list[Item]) -> list[Item]:
    return list(a)


_MODES: dict[str, Callable[[MergeConfig, list[Item], list[Item]], list[Item]]] = {
    "append": _append, "combine_by_position": _by_position, "combine_by_key": _by_key,
    "wait_pass_first": _pass_first,
}
