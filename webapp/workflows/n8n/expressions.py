"""n8n expressions → ours: the simple shapes translated, the rest kept verbatim and reported."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from webapp.workflows.n8n.report import Entry, ImportReport

_ACCESS = r"""(?:\.[A-Za-z_]\w*|\[\s*(?:"[^"\\]*"|'[^'\\]*'|\d+)\s*\])*"""
_NAME = r"""\s*(?P<q>['"])(?P<name>(?:(?!(?P=q)).)+)(?P=q)\s*"""
_SIMPLE: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(rf"\$json(?P<path>{_ACCESS})"), lambda m: "item" + m["path"]),
    (re.compile(rf"\$input\.item\.json(?P<path>{_ACCESS})"), lambda m: "item" + m["path"]),
    (re.compile(rf"\$input\.first\(\)\.json(?P<path>{_ACCESS})"), lambda m: "items[0]" + m["path"]),
    (re.compile(r"\$input\.all\(\)"), lambda m: "items"),
    (re.compile(rf"\$\({_NAME}\)\.(?:item|first\(\))\.json(?P<path>{_ACCESS})"),
     lambda m: f"nodes[{json.dumps(m['name'])}][0]" + m["path"]),
    (re.compile(rf"\$node\[{_NAME}\]\.json(?P<path>{_ACCESS})"),
     lambda m: f"nodes[{json.dumps(m['name'])}][0]" + m["path"]),
]
_BLOCK = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


def translate_simple(source: str) -> str | None:
    """``$json.a.b`` → ``item.a.b`` and the few other shapes in ``_SIMPLE``; None for anything else."""
    source = source.strip()
    for pattern, build in _SIMPLE:
        if match := pattern.fullmatch(source):
            return build(match)
    return None


def neutralise(text: str) -> str:
    """Text that must reach the node unevaluated (an n8n expression we cannot translate)."""
    return "{% raw %}" + text + "{% endraw %}" if ("{{" in text or "{%" in text) else text


class Translator:
    """Translates parameter values of one n8n node; what it cannot translate goes into the report."""

    def __init__(self, report: ImportReport, node: str) -> None:
        self.report = report
        self.node = node

    def value(self, value: Any, where: str) -> Any:
        """A parameter value: expressions translated where simple, others kept verbatim as text."""
        if isinstance(value, dict):
            return {k: self.value(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value
        if not value.startswith("="):
            return neutralise(value)  # n8n literal text: "{{" in it means nothing there
        translated = self.expression(value)
        if translated is None:
            self.report.expressions.append(Entry(self.node, f"kept verbatim as text (not evaluated): {value}", where))
            return neutralise(value)
        return translated

    @staticmethod
    def expression(value: str) -> str | None:
        """``={{ $json.x }}`` → ``{{ item.x }}``; None when any ``{{ }}`` block is not simple."""
        body = value[1:]
        failed = False

        def replace(match: re.Match[str]) -> str:
            nonlocal failed
            translated = translate_simple(match[1])
            failed = failed or translated is None
            return "{{ " + (translated or "") + " }}"

        result = _BLOCK.sub(replace, body)
        return None if failed or "{%" in body else result

    def field_path(self, value: Any) -> str | None:
        """The dotted field of a left-hand side ``={{ $json.a.b }}`` (our conditions take a field)."""
        if not isinstance(value, str):
            return None
        translated = self.expression(value) if value.startswith("=") else None
        match = re.fullmatch(rf"\{{\{{ item(?P<path>{_ACCESS}) \}}\}}", translated or "")
        if not match or not match["path"]:
            return None
        parts = re.findall(r"""\.([A-Za-z_]\w*)|\[\s*(?:"([^"\\]*)"|'([^'\\]*)'|(\d+))\s*\]""", match["path"])
        keys = ["".join(p) for p in parts]
        return None if any("." in k or not k for k in keys) else ".".join(keys)


