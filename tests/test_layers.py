"""engine/ and nodes/ never import the web layer (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_engine_and_nodes_do_not_load_webapp_or_litestar() -> None:
    code = (
        "import json, sys, pkgutil, importlib\n"
        "import engine, nodes\n"
        "for pkg in (engine, nodes):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(m.name)\n"
        "print(json.dumps(sorted(n for n in sys.modules if n.split('.')[0] in ('webapp', 'litestar'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == []
