"""The dashboard's run page on what a run adds while it runs, in a real headless chromium:
tasks a Spawn or a map adds appear in the DAG live with their edges, superseded ones faded,
and a task's streamed output fills its details as it comes, always as text.  Screenshots go
to test-output/screenshots/."""

from __future__ import annotations

import re

from playwright.async_api import expect
from redis.asyncio import Redis

from streamproc import Client
from tests.browser import Tab, needs_chromium, node, submit
from tests.conftest import Engine
from tests.output_agents import gate

pytestmark = needs_chromium
pytest_plugins = ["tests.browser_fixtures"]

SPAWNED = ["q0", "q1", "q2"]
GROWING = {
    "name": "growing",
    "tasks": [
        {"id": "start", "agent": "gate"},
        {
            "id": "plan",
            "agent": "planner",
            "needs": ["start"],
            "input": {
                "spawn": [{"id": q, "agent": "echo", "input": q} for q in SPAWNED],
                "result": ["redis", "streams"],
            },
        },
        {"id": "each", "agent": "echo", "map": "plan", "needs": ["plan"]},
        {"id": "join", "agent": "echo", "needs": ["plan"]},
    ],
}
SUPERSEDING = {
    "tasks": [
        {
            "id": "plan",
            "agent": "planner",
            "input": {"spawn": [{"id": "q0", "agent": "echo"}, {"id": "q1", "agent": "echo"}]},
        },
        {  # asks plan to run again: it spawns q0 and q2, and q1 is superseded
            "id": "judge",
            "agent": "judge",
            "needs": ["plan"],
            "input": {"adjust": {"plan": {"spawn": [{"id": "q0", "agent": "echo"}]}}},
        },
    ]
}
MARKUP = "<img src=x onerror=window.pwned=1>"
CHUNKS = ["Hel", "lo", {"tokens": 2}, MARKUP]


async def test_spawned_and_mapped_tasks_appear_live_with_their_edges_and_finish(
    engine: Engine, tab: Tab, redis: Redis
) -> None:
    workflow_id = await submit(tab.base, GROWING)
    await tab.open(f"#/workflows/{workflow_id}")
    await expect(node(tab, "start")).to_have_attribute("data-state", "running")
    await expect(tab.page.locator("svg.dag g.node")).to_have_count(4)
    await tab.page.evaluate("window.sameDocument = true")

    await redis.rpush(f"open:{workflow_id}:start", "go")  # plan runs, spawns and maps
    for task in [*SPAWNED, "each[0]", "each[1]", "plan", "each", "join"]:
        await expect(node(tab, task)).to_have_attribute("data-state", "done")
    await expect(tab.page.locator("svg.dag g.node")).to_have_count(9)
    # a spawned task needs its spawner, and the spawner's dependents need it; a map's
    # instances need what it maps over, and the mapped task needs its instances
    for edge in ("plan>q0", "q0>join", "q2>join", "plan>each[0]", "each[1]>each"):
        await expect(tab.page.locator(f'svg.dag path.edge[data-edge="{edge}"]')).to_have_count(1)
    await expect(tab.page.locator(".run-head .badge")).to_have_text("completed")
    assert await tab.page.evaluate("window.sameDocument") is True  # never reloaded
    log = tab.page.locator(".event-log li")
    await expect(log.filter(has_text="tasks_spawned")).to_have_count(2)  # by plan and by each

    await node(tab, "each[1]").click()  # an instance's id has brackets: its URLs encode them
    details = tab.page.locator("section.details")
    await expect(details.locator('pre[data-part="input"]')).to_contain_text('"item": "streams"')
    await tab.shot("run-spawned-and-mapped")
    assert tab.errors == []


async def test_a_superseded_task_is_drawn_faded(engine: Engine, tab: Tab, client: Client) -> None:
    workflow_id = await submit(tab.base, SUPERSEDING)
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    await tab.open(f"#/workflows/{workflow_id}")
    await expect(node(tab, "q1")).to_have_attribute("data-state", "superseded")
    await expect(node(tab, "q1")).to_have_class(re.compile(r"\bstate-superseded\b"))
    await expect(tab.page.locator('path.edge.superseded[data-edge="plan>q1"]')).to_have_count(1)
    await expect(tab.page.locator("path.edge.superseded")).to_have_count(1)
    await expect(node(tab, "q1")).to_have_css("opacity", "0.45")
    # tasks_superseded names the spawner as its target: listed with it, and among its events
    await expect(tab.page.locator("ol.events")).to_contain_text("tasks_superseded plan")
    await node(tab, "plan").click()
    events = tab.page.locator("section.details table.task-events")
    await expect(events).to_contain_text("tasks_superseded")
    await tab.shot("run-superseded")
    assert tab.errors == []


async def test_a_tasks_streamed_output_fills_its_details_live_as_text(
    engine: Engine, tab: Tab, client: Client
) -> None:
    engine.start_worker(("talker", "second_try"))
    talk = {"chunks": CHUNKS, "gated": True, "hold": True}
    spec = {
        "tasks": [
            {"id": "say", "agent": "talker", "input": talk},
            {"id": "retried", "agent": "second_try", "retries": 1},
        ]
    }
    workflow_id = await submit(tab.base, spec)
    await tab.open(f"#/workflows/{workflow_id}")
    await expect(node(tab, "say")).to_have_attribute("data-state", "running")
    await node(tab, "say").click()
    output = tab.page.locator('section.details [data-part="output"]')
    await expect(output).to_contain_text("No output yet")

    gate(workflow_id).set()  # the talker emits its chunks now, and holds on
    await expect(output.locator(".attempt")).to_have_count(1)
    await expect(output.locator("pre")).to_have_text(f'Hello\n{{"tokens":2}}\n{MARKUP}')
    await expect(node(tab, "say")).to_have_attribute("data-state", "running")
    await tab.shot("task-output")
    gate(f"{workflow_id}:end").set()
    await expect(node(tab, "say")).to_have_attribute("data-state", "done")
    assert await tab.page.evaluate("window.pwned") is None
    assert await tab.page.locator("main img").count() == 0

    await node(tab, "retried").click()  # its first attempt's chunk is marked superseded
    await expect(output.locator(".attempt")).to_have_count(2)
    await expect(output.locator(".attempt.superseded")).to_contain_text("attempt 1")
    await expect(output.locator(".attempt:not(.superseded)")).to_contain_text("attempt 2")
    await tab.shot("task-output-superseded")
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    assert tab.errors == []


async def test_a_task_running_when_its_run_fails_is_drawn_to_its_end_with_its_output(
    engine: Engine, tab: Tab
) -> None:
    """Its run's event stream goes on past ``failed`` until it ends: its node does not stay
    ``running``, and the chunks it emits after the failure fill its details."""
    engine.start_worker(("talker",))
    talk = {"chunks": ["late ", "words"], "gated": True, "hold": True}
    spec = {
        "tasks": [
            {"id": "say", "agent": "talker", "input": talk},
            {"id": "broken", "agent": "fatal", "needs": []},
        ]
    }
    workflow_id = await submit(tab.base, spec)
    await tab.open(f"#/workflows/{workflow_id}")
    await expect(node(tab, "broken")).to_have_attribute("data-state", "failed")
    await expect(tab.page.locator(".run-head h1")).to_contain_text("failed")
    await expect(node(tab, "say")).to_have_attribute("data-state", "running")
    await node(tab, "say").click()
    gate(workflow_id).set()  # it emits now, after its run failed
    output = tab.page.locator('section.details [data-part="output"] pre')
    await expect(output).to_have_text("late words")
    gate(f"{workflow_id}:end").set()
    await expect(node(tab, "say")).to_have_attribute("data-state", "done")
    assert tab.errors == []


async def test_a_running_runs_age_counts_on_between_events(engine: Engine, tab: Tab) -> None:
    engine.start_worker(("talker",))
    workflow_id = await submit(
        tab.base,
        {"tasks": [{"id": "say", "agent": "talker", "input": {"gated": True, "chunks": []}}]},
    )
    await tab.open(f"#/workflows/{workflow_id}")
    facts = tab.page.locator(".run-head .facts")
    await expect(facts).to_contain_text("running for")
    first = await facts.inner_text()
    await expect(facts).not_to_have_text(first)  # no event came meanwhile: the gate holds
    gate(workflow_id).set()
    await expect(node(tab, "say")).to_have_attribute("data-state", "done")
    assert tab.errors == []
