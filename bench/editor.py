"""Editor performance: opening a 200-node / 250-connection workflow, and saving one node's config.

1. **Open** (embedded profile, a real ``patchwire serve`` on loopback, Debian's Chromium headless via
   Playwright, a fresh browser context — cold cache — per load). Times are from the page's
   navigation start (``performance.timeOrigin``):
   ``html`` (last byte of the editor page), ``dcl`` (DOMContentLoaded: editor.js is a deferred script,
   so the graph has been handed to Drawflow), ``drawn`` (first animation frame with all 200 nodes and
   250 wires in the DOM), ``interactive`` (a real mouse click on a node, sent by Playwright as soon as
   ``drawn`` is seen, has selected it: includes Playwright's own round trips, so it is an upper bound).
2. **Save** one node's config (SQLite and PostgreSQL): the editor's form post
   ``POST /workflows/{id}/nodes/{node}`` with the version it saw, timed around each request through
   Litestar's in-process ``AsyncTestClient`` (no socket): handler + middleware (session, auth, CSRF) +
   the in-process transport — the server's time without the network.

    .venv/bin/python bench/editor.py                      # both parts, SQLite and PostgreSQL
    .venv/bin/python bench/editor.py --loads 20 --saves 500 --profile embedded
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
from common import (  # noqa: E402
    PATCHWIRE,
    base_parser,
    percentile,
    profile_env,
    selected_profiles,
    show_and_save,
    table,
)

from engine import eventloop  # noqa: E402

NODES, CONNECTIONS = 200, 250
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PASSWORD = "correct horse battery staple"

# Runs before the page's own scripts: notes when everything is drawn and when a click was handled.
PROBE = f"""
window.__bench = {{}};
(function poll() {{
  const nodes = document.querySelectorAll('#canvas .drawflow-node').length;
  const wires = document.querySelectorAll('#canvas svg.connection path.main-path').length;
  if (nodes >= {NODES} && wires >= {CONNECTIONS}) {{ window.__bench.drawn = performance.now(); return; }}
  requestAnimationFrame(poll);
}})();
window.addEventListener('mouseup', () => {{
  if (document.querySelector('#canvas .drawflow-node.selected')) window.__bench.interactive = performance.now();
}});
"""

# Every wire as drawn at load, compared with Drawflow's own updateConnectionNodes for every node.
SAME_AS_DRAWFLOW = """() => {
  const paths = () => [...document.querySelectorAll('#canvas svg.connection path.main-path')].map((p) => p.getAttribute('d'));
  const before = paths();
  for (const node of document.querySelectorAll('#canvas .drawflow-node')) window.patchwireEditor.updateConnectionNodes(node.id);
  return paths().flatMap((d, i) => (d === before[i] ? [] : [[before[i], d]]));
}"""


def dag_document(name: str = "Editor benchmark") -> dict[str, Any]:
    """Manual Trigger + 199 Set nodes on a 20-column grid; a chain plus 51 forward skips (a DAG)."""
    nodes = [{"id": "n0", "type": "manual_trigger", "name": "Start", "position": {"x": 40, "y": 40}}]
    nodes += [{"id": f"n{i}", "type": "set", "name": f"Set {i}",
               "config": {"fields": [{"name": f"f{i}", "value": f"{{{{ item.f{i - 1} }}}}"}]},
               "position": {"x": 40 + (i % 20) * 230, "y": 40 + (i // 20) * 160}} for i in range(1, NODES)]
    edges = [(i, i + 1) for i in range(NODES - 1)]
    edges += [(i, i + 2 + i % 5) for i in range(0, 3 * 51, 3)][: CONNECTIONS - len(edges)]
    assert len(set(edges)) == CONNECTIONS and all(a < b < NODES for a, b in edges)
    return {"name": name, "nodes": nodes,
            "connections": [{"source": f"n{a}", "target": f"n{b}"} for a, b in edges]}


# --- 1. open -------------------------------------------------------------------------------------
def _serve(env: dict[str, str], workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (workdir / "serve.log").open("wb")
    proc = subprocess.Popen([PATCHWIRE, "serve", "--host", "127.0.0.1", "--port", str(port)], env={**_os_env(), **env},
                            stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"patchwire serve did not start; see {workdir / 'serve.log'}")


def _os_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "QUEUE_URL", "REDIS_URL"}}


def _login_and_import(url: str) -> tuple[httpx.Client, int]:
    client = httpx.Client(base_url=url, follow_redirects=False)
    client.get("/login")
    csrf = {"x-csrftoken": client.cookies["csrftoken"]}
    client.post("/register", data={"email": "bench@example.com", "password": PASSWORD}, headers=csrf)
    import json

    response = client.post("/workflows/import", headers={**csrf, "accept": "application/json"},
                           files={"file": ("bench.json", json.dumps(dag_document()).encode(), "application/json")})
    assert response.status_code == 201, response.text
    return client, response.json()["workflow_id"]


def measure_open(loads: int, warmup: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with profile_env("embedded", "editor") as deployment:
        proc, url = _serve(deployment.env, deployment.data_dir)
        try:
            client, workflow_id = _login_and_import(url)
            cookies = [{"name": c.name, "value": c.value, "url": url} for c in client.cookies.jar]
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                samples = [_one_load(browser, cookies, f"{url}/workflows/{workflow_id}") for _ in range(warmup + loads)]
                browser.close()
        finally:
            proc.terminate()
            proc.wait(10)
    return {"samples": samples[warmup:], "warmup": warmup}


def _one_load(browser: Any, cookies: list[dict[str, str]], url: str) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1600, "height": 900})
    context.add_cookies(cookies)
    page = context.new_page()
    page.add_init_script(PROBE)
    page.goto(url, wait_until="commit")
    page.wait_for_function("() => window.__bench && window.__bench.drawn", polling="raf", timeout=30_000)
    page.mouse.click(*_centre(page, "#canvas .drawflow-node >> nth=1"))
    page.wait_for_function("() => window.__bench.interactive", polling="raf", timeout=10_000)
    timing = page.evaluate("""() => {
      const nav = performance.getEntriesByType('navigation')[0];
      return {html: nav.responseEnd, dcl: nav.domContentLoadedEventEnd, drawn: window.__bench.drawn,
              interactive: window.__bench.interactive,
              nodes: document.querySelectorAll('#canvas .drawflow-node').length,
              wires: document.querySelectorAll('#canvas svg.connection').length};
    }""")
    assert timing["nodes"] == NODES and timing["wires"] == CONNECTIONS, timing
    assert page.evaluate(SAME_AS_DRAWFLOW) == [], "the batched wires differ from Drawflow's own drawing"
    context.close()
    return timing


def _centre(page: Any, selector: str) -> tuple[float, float]:
    box = page.locator(selector).bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + 12


# --- 2. save -------------------------------------------------------------------------------------
async def measure_saves(profile: str, saves: int) -> dict[str, Any]:
    import json

    from litestar.testing import AsyncTestClient

    from webapp.app import create_app

    with profile_env(profile, "editor") as deployment:
        async with AsyncTestClient(app=create_app(deployment.settings)) as client:
            await client.get("/login")
            csrf = {"x-csrftoken": client.cookies["csrftoken"]}
            await client.post("/register", data={"email": "bench@example.com", "password": PASSWORD}, headers=csrf)
            imported = await client.post("/workflows/import", headers={**csrf, "accept": "application/json"},
                                         files={"file": ("b.json", json.dumps(dag_document()).encode(), "application/json")})
            workflow_id = imported.json()["workflow_id"]
            export = (await client.get(f"/workflows/{workflow_id}/export")).json()
            node = next(n for n in export["nodes"] if n["name"] == "Set 100")
            page = (await client.get(f"/workflows/{workflow_id}")).text
            version = int(page.split(f'data-node-id="{node["id"]}"', 1)[1].split('data-version="', 1)[1].split('"', 1)[0])
            headers = {**csrf, "hx-request": "true"}
            times = []
            for i in range(saves):
                form = {"name": "Set 100", "fields.name": ["greeting"], "fields.value": [f"hello {{{{ item.f99 }}}} {i}"],
                        "keep_existing": "on", "version": str(version)}
                started = time.perf_counter()
                response = await client.post(f"/workflows/{workflow_id}/nodes/{node['id']}", data=form, headers=headers)
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
                version = int(response.headers["x-node-version"])
    return {"saves": saves, "ms": times}


def main() -> None:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--loads", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--saves", type=int, default=300)
    parser.add_argument("--skip-open", action="store_true")
    args = parser.parse_args()
    profiles = [p for p in selected_profiles(args.profile) if p != "redis"]  # redis: same database as postgres
    results: dict[str, Any] = {}
    lines = []
    if not args.skip_open:
        opened = measure_open(args.loads, args.warmup)
        results["open"] = opened
        keys = ["html", "dcl", "drawn", "interactive"]
        rows = [[k, percentile([s[k] for s in opened["samples"]], 0.5), percentile([s[k] for s in opened["samples"]], 0.95),
                 max(s[k] for s in opened["samples"])] for k in keys]
        lines += [f"open a {NODES}-node / {CONNECTIONS}-connection workflow, {args.loads} loads (ms from navigation start)",
                  table(["milestone", "p50", "p95", "max"], rows), ""]
    rows = []
    for profile in profiles:
        saved = eventloop.run(measure_saves(profile, args.saves))
        results[f"save_{profile}"] = saved
        ms = saved["ms"]
        rows.append([{"embedded": "SQLite", "postgres": "PostgreSQL"}[profile], len(ms), percentile(ms, 0.5),
                     percentile(ms, 0.95), percentile(ms, 0.99), max(ms)])
    if rows:
        lines += ["save one node's config (ms, in-process server time)",
                  table(["database", "saves", "p50", "p95", "p99", "max"], rows)]
    show_and_save("editor", results, "\n".join(lines), save=not args.no_save)


if __name__ == "__main__":
    main()
