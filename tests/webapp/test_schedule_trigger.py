"""The Schedule Trigger in the web app (SQLite and PostgreSQL): its form shows the next five run times and refuses
bad input field by field; activated, the app's own worker fires its slot and the execution runs."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from engine.models import Execution, Trigger
from tests.webapp.conftest import Browser


def next_runs(html: str) -> list[str]:
    found = re.search(r'<ol class="mono" data-testid="schedule-next">(.*?)</ol>', html, re.S)
    return re.findall(r"<li>(.*?)</li>", found.group(1)) if found else []


def test_the_form_shows_the_next_five_runs_and_refuses_bad_input_precisely(browser: Browser) -> None:
    browser.register("schedule-form@example.com")
    wid = browser.create_workflow()
    node = browser.add_node(wid, "schedule_trigger")
    panel = browser.get(f"/workflows/{wid}/nodes/{node}").text
    assert "Next run times" in panel and len(next_runs(panel)) == 5  # the default: every 15 minutes, UTC

    saved = browser.configure(wid, node, {"name": "Weekdays", "mode": "times", "times": "09:00, 17:30",
                                          "days": "mon-fri", "timezone": "Europe/Berlin", "every": "15",
                                          "unit": "minutes", "missed": "skip"})
    assert saved.status_code == 200, saved.text
    runs = next_runs(saved.text)
    assert len(runs) == 5 and all(re.search(r"^(Mon|Tue|Wed|Thu|Fri) .* (09:00|17:30):00 CES?T$", r) for r in runs)

    for field, value, message in [("cron", "61 * * * *", "is not a valid cron expression"),
                                  ("timezone", "Mars/Olympus", "Unknown time zone &#39;Mars/Olympus&#39;"),
                                  ("times", "9h", "&#39;9h&#39; is not a time of day")]:
        form = {"name": "Weekdays", "mode": "cron" if field == "cron" else "times", "times": "09:00",
                "every": "15", "unit": "minutes", "missed": "skip", "timezone": "UTC", field: value}
        refused = browser.configure(wid, node, form)
        assert refused.status_code == 422, refused.text
        assert message in refused.text and "Fix the fields below to see the next run times." in refused.text
    assert len(next_runs(browser.get(f"/workflows/{wid}/nodes/{node}").text)) == 5  # the saved config stays


def test_an_active_schedule_runs_its_slot_in_the_apps_worker(browser: Browser, db_call: Any) -> None:
    browser.register("schedule-run@example.com")
    wid = browser.create_workflow("Every minute")
    node = browser.add_node(wid, "schedule_trigger")
    assert browser.configure(wid, node, {"name": "Every minute", "mode": "cron", "cron": "* * * * *",
                                         "timezone": "UTC", "every": "15", "unit": "minutes",
                                         "missed": "skip"}).status_code == 200
    target = browser.add_node(wid, "set", x=200)
    assert browser.connect(wid, node, target).status_code == 201
    assert browser.post(f"/workflows/{wid}/activate?where=list").status_code == 200
    slot = datetime.fromtimestamp(int(time.time()), UTC)

    async def due_now(db: Any) -> None:  # rather than waiting up to a minute for the next one
        await db.execute(update(Trigger).where(Trigger.workflow_id == wid).values(next_run_at=slot))
        await db.commit()

    db_call(due_now)
    deadline = time.monotonic() + 30
    while not (found := list(db_call(lambda db: db.scalars(select(Execution).where(Execution.workflow_id == wid))))):
        assert time.monotonic() < deadline, "the slot never fired"
        time.sleep(0.05)
    [execution] = found
    assert (execution.trigger, execution.trigger_node) == ("schedule", node)
    assert execution.input["timestamp"] == slot.isoformat().replace("+00:00", "Z")
    assert browser.wait_for_execution(execution.id) == "succeeded"
    [trigger] = db_call(lambda db: db.scalars(select(Trigger).where(Trigger.workflow_id == wid)))
    assert trigger.next_run_at > slot and trigger.next_run_at.second == 0
