"""Node editor with a 1 MB input: from the click on a node to its three panes shown with their data.

A real ``patchwire serve`` (embedded profile) on loopback, Debian's Chromium headless via Playwright. The
workflow is Manual Trigger → A → B, with ~1 MB of items pinned as A's output, so B's input pane reads them
(the pinned data of the nodes feeding it). Each sample loads the editor, clicks B, and times, in the page,
from the ``pointerdown`` on the node to the first animation frame where the input pane shows its first row
(or, in the JSON and Schema views, its first field) and the output pane has loaded. Per view (the
remembered view is a cookie, set before the load): best, median, p95, max of N.

    .venv/bin/python bench/node_editor.py                  # 15 samples per view
    .venv/bin/python bench/node_editor.py --samples 30 --no-save
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
from common import base_parser, percentile, profile_env, show_and_save, table  # noqa: E402
from editor import CHROMIUM, CHROMIUM_ARGS, PASSWORD, _serve  # noqa: E402

ITEMS = 2400  # ~0.97 MB of JSON: the pinned data's limit is 1 MiB
TARGET_MS = 300
SHOWN = {  # what "the panes shown with their data" means in each view
    "table": "#input-data-box table.dv-table tbody tr",
    "json": "#input-data-box .json-tree .jt-key",
    "schema": "#input-data-box .dv-schema .dv-field",
}
PROBE = """
window.__bench = {};
document.addEventListener('pointerdown', (e) => {
  if (e.target.closest && e.target.closest('.drawflow-node')) window.__bench.click = performance.now();
}, true);
"""
WAIT = """(selector) => {
  const b = window.__bench;
  if (b.click === undefined) return false;
  if (b.shown === undefined && document.querySelector(selector) && document.querySelector('#node-data.node-data')
      && document.querySelector('#node-editor .ne-input') && document.querySelector('#node-editor .ne-output')) {
    b.shown = performance.now();
  }
  return b.shown !== undefined;
}"""


DEBUG = False  # --requests
RESOURCES = """() => performance.getEntriesByType('resource').filter((r) => r.startTime >= window.__bench.click)
  .map((r) => [r.name.split('/').slice(-2).join('/'), Math.round(r.startTime - window.__bench.click),
               Math.round(r.duration)])"""


def payload() -> dict[str, Any]:
    items = [{"id": i, "text": "y" * 300, "user": {"name": f"user {i}", "tags": ["a", "b"], "score": i / 7}}
             for i in range(ITEMS)]
    return {"main": items}


def document() -> dict[str, Any]:
    nodes = [{"id": "t", "type": "manual_trigger", "name": "Start", "position": {"x": 40, "y": 80}},
             {"id": "a", "type": "set", "name": "A", "position": {"x": 300, "y": 80},
              "config": {"fields": [{"name": "a", "value": "{{ 1 }}"}]}},
             {"id": "b", "type": "set", "name": "B", "position": {"x": 560, "y": 80},
              "config": {"fields": [{"name": "b", "value": "{{ item.id }}"}]}}]
    return {"name": "Node editor benchmark", "nodes": nodes,
            "connections": [{"source": "t", "target": "a"}, {"source": "a", "target": "b"}]}


def prepare(url: str) -> tuple[httpx.Client, int, dict[str, str], int]:
    client = httpx.Client(base_url=url, follow_redirects=False, timeout=30)
    client.get("/login")
    csrf = {"x-csrftoken": client.cookies["csrftoken"]}
    client.post("/register", data={"email": "bench@example.com", "password": PASSWORD}, headers=csrf)
    response = client.post("/workflows/import", headers={**csrf, "accept": "application/json"},
                           files={"file": ("bench.json", json.dumps(document()).encode(), "application/json")})
    assert response.status_code == 201, response.text
    workflow_id = response.json()["workflow_id"]
    ids = {n["name"]: n["id"] for n in client.get(f"/workflows/{workflow_id}/export").json()["nodes"]}
    data = json.dumps(payload())
    pinned = client.post(f"/workflows/{workflow_id}/nodes/{ids['A']}/pin", data={"data": data},
                         headers={**csrf, "hx-request": "true"})
    assert pinned.status_code == 200, pinned.text
    return client, workflow_id, ids, len(data)


def one_sample(browser: Any, cookies: list[dict[str, str]], url: str, node_id: str, view: str) -> float:
    context = browser.new_context(viewport={"width": 1600, "height": 900})
    context.add_cookies([*cookies, {"name": "pw_input_view", "value": view, "url": url.split("/workflows")[0]}])
    page = context.new_page()
    page.add_init_script(PROBE)
    page.goto(url)
    node = page.locator(f'#canvas .drawflow-node[data-node-id="{node_id}"] .pw-node-type')
    node.wait_for()
    node.click()
    page.wait_for_function(WAIT, arg=SHOWN[view], polling="raf", timeout=30_000)
    elapsed = page.evaluate("() => window.__bench.shown - window.__bench.click")
    if DEBUG:
        print(view, round(elapsed), page.evaluate(RESOURCES))
    context.close()
    return float(elapsed)


def measure(samples: int, warmup: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with profile_env("embedded", "node_editor") as deployment:
        proc, url = _serve(deployment.env, deployment.data_dir)
        try:
            client, workflow_id, ids, size = prepare(url)
            cookies = [{"name": c.name, "value": c.value, "url": url} for c in client.cookies.jar]
            page_url = f"{url}/workflows/{workflow_id}"
            results: dict[str, Any] = {"input_bytes": size, "items": ITEMS}
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                for view in SHOWN:
                    times = [one_sample(browser, cookies, page_url, ids["B"], view) for _ in range(warmup + samples)]
                    results[view] = times[warmup:]
                browser.close()
        finally:
            proc.terminate()
            proc.wait(10)
    return results


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--requests", action="store_true",
                        help="print each sample's requests after the click: [path, start ms, duration ms]")
    args = parser.parse_args()
    global DEBUG
    DEBUG = args.requests
    results = measure(args.samples, args.warmup)
    summary = {view: {"best": min(results[view]), "median": percentile(results[view], 0.5),
                      "p95": percentile(results[view], 0.95), "max": max(results[view]), "n": len(results[view])}
               for view in SHOWN}
    rows = [[view, s["n"], s["best"], s["median"], s["p95"], s["max"]] for view, s in summary.items()]
    text = "\n".join([
        f"click on a node → its three panes with a {results['input_bytes']:,}-byte input ({ITEMS} items) shown "
        f"(ms; target: under {TARGET_MS} ms)",
        table(["input view", "n", "best", "median", "p95", "max"], rows), "",
        json.dumps({"benchmark": "node_editor", "input_bytes": results["input_bytes"], "views": summary})])
    show_and_save("node_editor", {"embedded": {**results, "summary": summary}}, text, save=not args.no_save)


if __name__ == "__main__":
    main()
