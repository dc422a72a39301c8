"""The embedded profile's data directory after real use (a registration, a run through the in-process
worker and its SQLite queue): the directory is 0700 and every file in it 0600, under a umask of 022."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from litestar.testing import TestClient

from engine.settings import load_settings
from tests.webapp.conftest import LOOPBACK, Browser
from tests.webapp.test_metrics import one_node_flow
from tests.webapp.test_runs import run
from webapp.app import create_app


def test_every_file_in_the_data_directory_is_owner_only(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        data_dir = tmp_path / "data"
        settings = load_settings({"PATCHWIRE_DATA_DIR": str(data_dir), "PATCHWIRE_HTTP_ALLOW_NETWORKS": LOOPBACK})
        with TestClient(app=create_app(settings)) as client:
            browser = Browser(client)
            browser.register("files@example.com")
            execution_id = run(browser, one_node_flow(browser, "Files", "{{ 1 }}"))
            assert browser.wait_for_execution(execution_id) == "succeeded"
            modes = {str(path.relative_to(data_dir)): stat.S_IMODE(path.stat().st_mode) for path in data_dir.rglob("*")}
    finally:
        os.umask(previous)
    assert {"secret_key", "patchwire.db", "patchwire.db-wal", "queue.db", "queue.db-wal"} <= set(modes), modes
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert {name: oct(m) for name, m in modes.items() if m != 0o600} == {}
