"""Activating a workflow as a user does: the Active switch in the editor (publishes, starts the triggers, shows
why it cannot), and the Active toggle and Next run column of the workflows list. The server registers the tests'
own schedule trigger (tests/engine/trigger_types.py), so this does not depend on the real trigger nodes."""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect
from test_editor_flow import create_workflow, drop_node, register

if TYPE_CHECKING:
    from conftest import Server

pytestmark = pytest.mark.e2e
PATCHWIRE_COMMAND = [sys.executable, "-m", "tests.engine.trigger_types"]


def test_activate_in_the_editor_and_toggle_in_the_list(page: Page, server: Server) -> None:
    base = server.url
    register(page, base, "activation")
    workflow_id = create_workflow(page, base, "Every minute")
    switch = page.locator("#active-toggle")
    expect(switch).to_have_attribute("aria-checked", "false")
    expect(switch).to_have_text("Inactive")

    drop_node(page, "manual_trigger", 40, 60)  # Run only: nothing to activate
    switch.click()
    expect(page.locator("#flash")).to_contain_text("Add a Webhook, Schedule or polling trigger")
    expect(switch).to_have_attribute("aria-checked", "false")

    drop_node(page, "test_every", 40, 260)
    page.locator("#active-toggle").click()
    expect(page.locator("#active-toggle")).to_have_attribute("aria-checked", "true")
    expect(page.locator("#active-toggle")).to_have_text("Active")
    expect(page.locator("#publish-state")).to_contain_text("Published: version 1")

    page.goto(f"{base}/workflows")
    toggle = page.locator(f"#workflow-{workflow_id}-active")
    next_run = page.locator(f"#workflow-{workflow_id}-next-run")
    expect(toggle).to_have_attribute("aria-checked", "true")
    expect(next_run.locator("time")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d UTC$"))  # every minute

    toggle.click()
    expect(page.locator(f"#workflow-{workflow_id}-active")).to_have_attribute("aria-checked", "false")
    expect(page.locator(f"#workflow-{workflow_id}-next-run")).to_have_text("—")
    page.locator(f"#workflow-{workflow_id}-active").click()
    expect(page.locator(f"#workflow-{workflow_id}-active")).to_have_attribute("aria-checked", "true")
    expect(page.locator(f"#workflow-{workflow_id}-next-run").locator("time")).to_be_visible()

    page.goto(f"{base}/workflows/{workflow_id}")
    expect(page.locator("#active-toggle")).to_have_attribute("aria-checked", "true")
    page.locator("#active-toggle").click()
    expect(page.locator("#active-toggle")).to_have_attribute("aria-checked", "false")
    page.goto(f"{base}/workflows")
    expect(page.locator(f"#workflow-{workflow_id}-active")).to_have_attribute("aria-checked", "false")
