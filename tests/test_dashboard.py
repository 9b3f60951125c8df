"""The web dashboard (issue 21) in a real headless chromium: pages open with a token asked
once, a run's DAG follows the engine live with no reload, task details, cancel, requeue,
tenants kept apart, and workflow values shown as text, never run as markup.  Each page is
screenshotted into test-output/screenshots/ for a reviewer."""

from __future__ import annotations

import re

from playwright.async_api import Browser, expect
from redis.asyncio import Redis

from streamproc import Client
from tests.browser import (
    ACME,
    GLOBEX,
    OPS,
    READER,
    Tab,
    needs_chromium,
    new_tab,
    node,
    served,
    submit,
)
from tests.conftest import Engine
from tests.http_helpers import GATED

pytestmark = needs_chromium
pytest_plugins = ["tests.browser_fixtures"]

DIAMOND = {
    "name": "diamond",
    "tasks": [
        {"id": "start", "agent": "gate", "input": {"topic": "owls"}},
        {"id": "left", "agent": "echo", "input": "l", "needs": ["start"]},
        {"id": "right", "agent": "echo", "input": "r", "needs": ["start"]},
        {"id": "join", "agent": "echo", "input": "j", "needs": ["left", "right"]},
    ],
}
ONE = {"tasks": [{"id": "only", "agent": "echo", "input": 1}]}
FIXABLE = {"tasks": [{"id": "fix", "agent": "fixable", "retries": 0}]}
PAYLOAD = "<script>window.pwned = 1</script><img src='x' onerror='window.pwned = 2'>"


async def test_the_runs_page_asks_for_a_token_once_per_tab(
    engine: Engine, tab: Tab, client: Client
) -> None:
    assert (await client.wait(await submit(tab.base, ONE), timeout=20)).status == "completed"
    await tab.open("#/")
    await expect(tab.page.get_by_role("heading", name="Runs")).to_be_visible()
    await tab.page.get_by_role("link", name="Agents").click()
    await expect(tab.page.locator('tr[data-agent="echo"]')).to_be_visible()
    await tab.page.reload()  # the token is kept for the tab: no second prompt
    await expect(tab.page.locator('tr[data-agent="echo"]')).to_be_visible()
    await expect(tab.page.get_by_label("Bearer token")).to_be_hidden()
    # This process's workers count finished tasks: a second read of /metrics draws the rate.
    await expect(tab.page.locator('tr[data-agent="echo"] .chart polyline')).to_have_count(1)
    await tab.shot("agents")
    await tab.page.get_by_role("link", name="Search").click()
    await expect(tab.page.get_by_role("heading", name="Search providers")).to_be_visible()
    await tab.shot("search")
    assert tab.errors == []


async def test_the_runs_page_lists_runs_newest_first_live_and_filtered(
    engine: Engine, tab: Tab, redis: Redis, client: Client
) -> None:
    first = await submit(tab.base, {"name": "nightly", **ONE})
    assert (await client.wait(first, timeout=20)).status == "completed"
    await tab.open("#/")
    rows = tab.page.locator("table.runs-table tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("completed")
    await expect(rows.first).to_contain_text("1/1")

    gated = await submit(tab.base, {"name": "gated", **GATED})  # listed with no reload
    try:
        await expect(rows).to_have_count(2)
        await expect(rows.first).to_have_attribute("data-run", gated)
        await expect(rows.first).to_contain_text("running")
        await tab.shot("runs")
        await tab.page.get_by_label("status").select_option("completed")
        await expect(rows).to_have_count(1)
        await expect(rows.first).to_have_attribute("data-run", first)
        await tab.page.get_by_label("status").select_option("")
        await tab.page.get_by_label("name").fill("gated")
        await tab.page.get_by_label("name").press("Enter")
        await expect(rows).to_have_count(1)
        await rows.first.get_by_role("link").click()
        await expect(tab.page.locator("code.run-id")).to_have_text(gated)
    finally:
        await redis.rpush(f"open:{gated}:slow", "go")
    assert tab.errors == []


async def test_a_wrong_token_is_asked_again_and_without_tokens_none_is_asked(
    engine: Engine, tab: Tab, browser: Browser, client: Client
) -> None:
    await tab.open("#/agents", token="not-a-token-of-this-api")  # noqa: S106
    await expect(tab.page.get_by_text("The API refused this token.")).to_be_visible()
    await expect(tab.page.get_by_label("Bearer token")).to_be_visible()

    async with served(client, "") as base, new_tab(browser, base) as tokenless:
        await tokenless.open("#/agents", token=None)
        await expect(tokenless.page.locator('tr[data-agent="echo"]')).to_be_visible()
        await expect(tokenless.page.get_by_label("Bearer token")).to_be_hidden()
        await expect(tokenless.page.get_by_role("button", name="Forget token")).to_be_hidden()


async def test_a_submitted_workflows_dag_reaches_all_done_live_without_a_reload(
    engine: Engine, tab: Tab, redis: Redis, client: Client
) -> None:
    workflow_id = await submit(tab.base, DIAMOND)
    await tab.open(f"#/workflows/{workflow_id}")
    await expect(node(tab, "start")).to_have_attribute("data-state", "running")
    await expect(node(tab, "join")).to_have_attribute("data-state", "waiting")
    await expect(tab.page.locator("svg.dag path.edge")).to_have_count(4)
    await expect(tab.page.locator('path.edge[data-edge="left>join"]')).to_have_count(1)
    await tab.page.evaluate("window.sameDocument = true")
    await tab.shot("run-running")

    await redis.rpush(f"open:{workflow_id}:start", "go")  # the gate task may finish
    for task in ("start", "left", "right", "join"):
        await expect(node(tab, task)).to_have_attribute("data-state", "done")
    await expect(tab.page.locator(".run-head .badge")).to_have_text("completed")
    assert await tab.page.evaluate("window.sameDocument") is True  # never reloaded
    await tab.shot("run-done")
    assert tab.errors == []


async def test_clicking_a_task_shows_its_input_result_timings_and_events(
    engine: Engine, tab: Tab, client: Client
) -> None:
    large = "y" * (70 << 10)  # past the 64 KiB a state shows inline
    spec = {
        "tasks": [
            {"id": "big", "agent": "echo", "input": large},
            {"id": "first", "agent": "echo", "input": "a"},
            {"id": "sum", "agent": "echo", "input": {"n": 42}, "needs": ["first"]},
        ]
    }
    workflow_id = await submit(tab.base, spec)
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    await tab.open(f"#/workflows/{workflow_id}")
    await node(tab, "sum").click()
    details = tab.page.locator("section.details")
    await expect(details.locator("code.task-id")).to_have_text("sum")
    await expect(details.locator('pre[data-part="input"]')).to_contain_text('"n": 42')
    await expect(details.locator('pre[data-part="result"]')).to_contain_text('"deps"')
    await expect(details.locator("dl.facts")).to_contain_text("ran")
    await expect(details.locator("table.task-events")).to_contain_text("task_done")
    shown = await details.locator("table.task-events").inner_text()
    assert not re.search(r"\b1\d{12}\b", shown), shown  # a time (began) shown as one, not as ms
    await tab.shot("task-details")

    await node(tab, "big").click()
    await details.get_by_role("button", name=re.compile("Load the whole result")).click()
    await expect(details.locator('pre[data-part="result"]')).to_contain_text("yyyy")
    assert tab.errors == []


async def test_an_unknown_run_shows_its_error_alone(engine: Engine, tab: Tab) -> None:
    """It also showed a Cancel button and an empty Events list."""
    await tab.open("#/workflows/no-such-run")
    await expect(tab.page.locator("main")).to_contain_text("workflow 'no-such-run' not found")
    await expect(tab.page.get_by_role("button", name="Cancel run")).to_have_count(0)
    await expect(tab.page.locator("details.event-log")).to_have_count(0)


async def test_cancel_stops_a_running_workflow_and_a_read_token_cannot(
    engine: Engine, tab: Tab, redis: Redis, client: Client
) -> None:
    workflow_id = await submit(tab.base, GATED)
    try:
        await tab.open(f"#/workflows/{workflow_id}", token=READER)
        await expect(node(tab, "slow")).to_have_attribute("data-state", "running")
        await tab.page.get_by_role("button", name="Cancel run").click()
        await tab.page.get_by_role("button", name="Confirm: cancel this run").click()
        await expect(tab.page.get_by_text("lacks the 'submit' scope")).to_be_visible()
        await expect(tab.page.get_by_role("button", name="Cancel run")).to_be_disabled()
        assert (await client.get(workflow_id)).status == "running"

        await tab.page.get_by_role("button", name="Forget token").click()
        await tab.page.get_by_label("Bearer token").fill(OPS)
        await tab.page.get_by_role("button", name="Use this token").click()
        await tab.page.get_by_role("button", name="Cancel run").click()
        await tab.page.get_by_role("button", name="Confirm: cancel this run").click()
        await expect(tab.page.locator(".run-head .badge")).to_have_text("cancelled")
        await expect(node(tab, "next")).to_have_attribute("data-state", "skipped")
        await tab.shot("run-cancelled")
        assert (await client.get(workflow_id)).status == "cancelled"
    finally:
        await redis.rpush(f"open:{workflow_id}:slow", "go")  # let the worker stop


async def test_a_dead_letter_is_requeued_after_a_confirmation_and_its_run_completes(
    engine: Engine, tab: Tab, redis: Redis, client: Client
) -> None:
    workflow_id = await submit(tab.base, FIXABLE)
    assert (await client.wait(workflow_id, timeout=20)).status == "failed"
    await tab.open("#/dead")
    row = tab.page.locator("table.dead-table tr[data-entry]", has_text=workflow_id)
    await expect(row).to_contain_text("not fixed yet")
    await row.get_by_role("button", name="Details").click()
    await expect(tab.page.locator("tr.dead-fields pre")).to_contain_text('"history"')
    await tab.shot("dead-letters")

    await redis.set(f"fixed:{workflow_id}", "1")
    await row.get_by_role("button", name="Requeue").click()
    await row.get_by_role("button", name="Confirm: requeue").click()
    await expect(row).to_contain_text(f"requeued: {workflow_id} resumes")
    await expect(row.get_by_role("button", name="Purge")).to_have_count(0)
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    assert tab.errors == []


async def test_a_tenant_token_cannot_see_another_tenants_run(engine: Engine, tab: Tab) -> None:
    await submit(tab.base, {"id": "quarterly", **ONE}, token=ACME)
    await submit(tab.base, {"id": "own", **ONE}, token=GLOBEX)
    await tab.open("#/", token=GLOBEX)
    await expect(tab.page.locator("table.runs-table tbody tr")).to_have_count(1)
    await expect(tab.page.locator('tr[data-run="own"]')).to_be_visible()
    await tab.page.goto(f"{tab.base}/ui/#/workflows/quarterly")
    await expect(tab.page.get_by_text("workflow 'quarterly' not found")).to_be_visible()
    await expect(tab.page.locator("svg.dag")).to_have_count(0)
    await tab.shot("tenant-refused")

    await tab.page.get_by_role("button", name="Forget token").click()
    await tab.page.get_by_label("Bearer token").fill(ACME)
    await tab.page.get_by_role("button", name="Use this token").click()
    await expect(node(tab, "only")).to_have_attribute("data-state", "done")
    await expect(tab.page.locator("code.run-id")).to_have_text("quarterly")


async def test_a_script_in_an_input_result_or_name_is_shown_as_text_and_never_runs(
    engine: Engine, tab: Tab, client: Client
) -> None:
    spec = {"name": PAYLOAD, "tasks": [{"id": "x", "agent": "echo", "input": PAYLOAD}]}
    workflow_id = await submit(tab.base, spec)
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    await tab.open(f"#/workflows/{workflow_id}")
    await node(tab, "x").click()
    details = tab.page.locator("section.details")
    await expect(details.locator('pre[data-part="input"]')).to_contain_text(PAYLOAD)
    await expect(details.locator('pre[data-part="result"]')).to_contain_text(PAYLOAD)
    await expect(tab.page.locator(".run-head .facts")).to_contain_text(PAYLOAD)
    await tab.shot("script-as-text")
    assert await tab.page.evaluate("window.pwned") is None
    assert await tab.page.locator("main script, main img").count() == 0
