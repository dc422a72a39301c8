"""Wire routing (issue 17): a wire leaves its output port horizontally before it bends, so a wire from
If's "true" port toward a node below never passes over the "false" port."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Page, expect
from test_editor_flow import connection, create_workflow, drag_connection, drop_node, register

if TYPE_CHECKING:
    from conftest import PageErrors, Server

pytestmark = pytest.mark.e2e

# The wire's path in canvas units, the output ports' boxes, and the points of the path inside the
# "false" port's box (the stroke's half width around it).
GEOMETRY_JS = """(svg) => {
  const editor = window.patchwireEditor, pc = editor.precanvas.getBoundingClientRect();
  const box = (el) => { const r = el.getBoundingClientRect();
    return { left: (r.left - pc.x) / editor.zoom, right: (r.right - pc.x) / editor.zoom,
             top: (r.top - pc.y) / editor.zoom, bottom: (r.bottom - pc.y) / editor.zoom }; };
  const path = svg.querySelector('.main-path');
  const node = document.getElementById(svg.classList[2].slice(9));
  const falsePort = box(node.querySelector('.outputs .output_2'));
  const half = parseFloat(getComputedStyle(path).strokeWidth) / 2;
  const hits = [];
  for (let at = 0, n = path.getTotalLength(); at <= n; at += 1) {
    const p = path.getPointAtLength(at);
    if (p.x >= falsePort.left - half && p.x <= falsePort.right + half
        && p.y >= falsePort.top - half && p.y <= falsePort.bottom + half) hits.push([p.x, p.y]);
  }
  return { d: path.getAttribute('d'), falsePort, hits };
}"""


@pytest.mark.parametrize("server", ["embedded"], indirect=True)
def test_a_wire_from_true_to_a_node_below_clears_the_false_port(page: Page, server: Server,
                                                                page_errors: PageErrors) -> None:
    register(page, server.url, "wires")
    create_workflow(page, server.url, "Wires")
    branch = drop_node(page, "if", 120, 80)
    below = drop_node(page, "delay", 240, 330)  # down and only a little to the right: the hard case
    response = drag_connection(page, branch, "output_1", below, "input_1")
    assert response.status == 201, response.text()
    wire = connection(page, branch, "output_1", below, "input_1")
    expect(wire).to_have_count(1)

    geometry: dict[str, Any] = wire.evaluate(GEOMETRY_JS)
    numbers = [float(n) for n in geometry["d"].replace("M", " ").replace("L", " ").replace("C", " ").split()]
    start_x, start_y, lead_x, lead_y = numbers[:4]
    assert geometry["d"].strip().startswith("M") and " L " in geometry["d"]
    assert lead_y == start_y and lead_x - start_x >= 20, f"first segment is horizontal for 20 px: {geometry['d']}"
    assert geometry["falsePort"]["top"] > start_y, "the false port is below the true port"
    assert geometry["hits"] == [], f"the wire passes over the false port: {geometry}"

    # and the same route after a reload (drawn from the stored rows)
    page.reload()
    page.wait_for_function("() => !!window.patchwireLayout")
    again: dict[str, Any] = connection(page, branch, "output_1", below, "input_1").evaluate(GEOMETRY_JS)
    assert again["hits"] == [] and " L " in again["d"]
    # Nodes close side by side: a right-angled step halfway, never a loop back past either port.
    close = page.evaluate("() => routeWire(100, 50, 130, 80, 0.5)")
    xs = [float(n) for i, n in enumerate(close.replace("M", " ").replace("L", " ").replace("C", " ").split()) if i % 2 == 0]
    assert min(xs) >= 100 and max(xs) <= 130, f"the wire between close nodes stays between their ports: {close}"
    assert page_errors.page_errors == []
