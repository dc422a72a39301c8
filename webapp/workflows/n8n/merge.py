"""Merge v1–v3."""

from __future__ import annotations

from typing import Any

from webapp.workflows.n8n.base import Context, Mapped, NodeMapper, Params, register, report_options


@register
class MergeMapper(NodeMapper):
    """Merge: input 0 → a, 1 → b; modes as far as ours go."""

    n8n_types = ("merge",)

    def map(self, ctx: Context) -> Mapped:
        p = ctx.params
        inputs = {0: "a", 1: "b"}
        mode = p.get("mode", "append")
        if isinstance(p.get("numberInputs"), int) and p.get("numberInputs") > 2:
            ctx.unmapped("more than 2 inputs: inputs 3 and up are not connected", "numberInputs")
        config: dict[str, Any] = {"mode": "append"}
        if mode in ("mergeByIndex", "combineByPosition") or (mode == "combine" and _combine_by(p) == "position"):
            config["mode"] = "combine_by_position"
        elif mode in ("mergeByKey",):
            config.update(mode="combine_by_key", key_a=str(p.get("propertyName1", "")), key_b=str(p.get("propertyName2", "")))
        elif mode == "combine" and _combine_by(p) == "fields":
            config.update(_merge_keys(ctx))
        elif mode in ("passThrough", "chooseBranch"):
            config["mode"] = "wait_pass_first"
            second = p.get("output") in ("input2",) or str(p.get("useDataOfInput", "1")) == "2"
            p.get("chooseBranchMode")
            if p.get("output") == "empty":
                ctx.unmapped("output 'empty' is not supported: the first input's items are passed", "output")
            if second:
                inputs = {0: "b", 1: "a"}  # our wait_pass_first passes input a: swap the wires
        elif mode != "append":
            how = f" by {p.get('combineBy') or p.get('combinationMode')}" if mode == "combine" else ""
            ctx.unmapped(f"mode {mode!r}{how} is not supported (Patchwire's Merge appends, combines by position or by "
                         "one key, or waits and passes one input): mapped to append", "mode")
            p.read.update(p.raw)
        report_options(ctx, p.get("options"), ignore={"fuzzyCompare", "includeUnpaired"})
        if (p.get("options") or {}).get("includeUnpaired"):
            config["keep_unmatched"] = True
        return Mapped("merge", config, inputs=inputs)


def _combine_by(p: Params) -> str:
    raw = p.get("combineBy") or p.get("combinationMode") or "combineByFields"
    return {"combineByPosition": "position", "mergeByPosition": "position", "combineByFields": "fields",
            "mergeByFields": "fields"}.get(raw, raw)


def _merge_keys(ctx: Context) -> dict[str, Any]:
    p = ctx.params
    config: dict[str, Any] = {"mode": "combine_by_key"}
    if text := p.get("fieldsToMatchString"):
        key = str(text).split(",")[0].strip()
        config.update(key_a=key, key_b=key)
        if "," in str(text):
            ctx.unmapped("matching on several fields is not supported: only the first is used", "fieldsToMatchString")
    else:
        rows = (p.get("mergeByFields") or {}).get("values") or []
        if rows:
            config.update(key_a=str(rows[0].get("field1", "")), key_b=str(rows[0].get("field2", "")))
        if len(rows) > 1:
            ctx.unmapped("matching on several fields is not supported: only the first pair is used", "mergeByFields")
    p.get("advanced")
    join = p.get("joinMode", "keepMatches")
    if join == "keepEverything":
        config["keep_unmatched"] = True
    elif join != "keepMatches":
        ctx.unmapped(f"join mode {join!r} is not supported: only matches are kept", "joinMode")
    source = p.get("outputDataFrom", "both")
    if join in ("keepMatches", "keepNonMatches") and source not in ("both", None):
        ctx.unmapped(f"output data from {source!r} only is not supported: matched items are merged from both inputs "
                     "(fields of input 2 win on a clash)", "outputDataFrom")
    return config


