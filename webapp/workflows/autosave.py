"""The node panel's autosave: a save sent while the person types gets a small answer, not a new panel.

The browser (``static/js/editor-autosave.js``) posts the same form as the Save button with the header
``X-Autosave: 1``; the answer is JSON that it applies in place, so the form being typed in is never
replaced (no lost caret, no lost keystrokes)::

    {"version": 7, "errors": {"seconds": "…"}, "outputs": ["main", "error"], "oob": "<span hx-swap-oob…>…"}

``version`` is the node's version now (the next write carries it: the 409 protection on stale edits
holds as for every node write); ``errors`` are the fields refused (the stored config is then unchanged,
status 422); ``outputs`` are the node's output ports (its settings add or remove the error
output); ``oob`` are the canvas's out-of-band parts after a save (title, status badge, ports).
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response

from engine.models import Node

AUTOSAVE_HEADER = "X-Autosave"


def is_autosave(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get(AUTOSAVE_HEADER) == "1"


def autosave_response(request: Request[Any, Any, Any], node: Node, errors: dict[str, str],
                      outputs: list[str], version_header: str) -> Response[dict[str, Any]]:
    """The answer to an autosave: 200 with the canvas's parts, or 422 with the fields refused."""
    body: dict[str, Any] = {"version": node.version, "errors": errors, "outputs": outputs, "oob": ""}
    if not errors:
        template = request.app.template_engine.get_template("nodes/_autosave_oob.html")  # type: ignore[union-attr]
        body["oob"] = template.render(node=node, outputs=outputs)
    return Response(body, status_code=422 if errors else 200, headers={version_header: str(node.version)})
