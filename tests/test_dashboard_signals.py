"""The dashboard sends a signal to a task awaiting it, in a real headless chromium: the form in
the task's details, a payload checked as JSON in the page before anything is sent, a fresh
Idempotency-Key per send, the API's refusal shown as its one line, and the redraw each event of
the run brings moving nothing a user is working in.  Screenshots go to
test-output/screenshots/."""

from __future__ import annotations

import re

from playwright.async_api import Request, expect

from streamproc import Client
from tests.browser import OPS, READER, Tab, needs_chromium, node, submit
from tests.conftest import Engine

pytestmark = needs_chromium
pytest_plugins = ["tests.browser_fixtures"]

GATED = {
    "tasks": [
        {"id": "draft", "agent": "echo", "input": "text"},
        {"id": "approve", "wait_for": "approval", "timeout": 3600, "needs": ["draft"]},
        {"id": "send", "agent": "echo", "needs": ["approve"]},
    ]
}
# `approve` awaits beside three other waits: a signal to one of those redraws the page at a
# moment a test chooses.
BESIDE = {
    "tasks": [
        {"id": "approve", "wait_for": "approval", "timeout": 3600},
        *({"id": f"tick{n}", "wait_for": f"tick{n}", "timeout": 3600} for n in (1, 2, 3)),
    ]
}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$")


def signals_sent(tab: Tab) -> list[Request]:
    """Every signal request the page makes from now on."""
    sent: list[Request] = []
    tab.page.on("request", lambda r: sent.append(r) if "/signals/" in r.url else None)
    return sent


async def awaiting_approval(tab: Tab, token: str = OPS) -> str:
    """A gated run open at its awaiting `approve` task's details; its id."""
    workflow_id = await submit(tab.base, GATED)
    await tab.open(f"#/workflows/{workflow_id}", token=token)
    await expect(node(tab, "approve")).to_have_attribute("data-state", "awaiting")
    await expect(node(tab, "approve").locator("text.sub")).to_have_text("wait · awaiting")
    await node(tab, "approve").click()
    return workflow_id


async def still_awaiting(client: Client, workflow_id: str) -> None:
    state = await client.get(workflow_id)
    approve = next(t for t in state.tasks if t.id == "approve")
    assert (state.status, approve.state, approve.wait_for, state.signals) == (
        "running",
        "awaiting",
        "approval",
        [],
    )


async def test_a_signal_sent_from_the_form_resumes_the_task_with_its_payload(
    engine: Engine, tab: Tab, client: Client
) -> None:
    sent = signals_sent(tab)
    workflow_id = await awaiting_approval(tab)
    form = tab.page.locator('form[data-part="signal"]')
    await expect(form.get_by_label("Signal")).to_have_value("approval")
    await expect(form.get_by_label("Signal")).not_to_be_editable()
    await expect(form.get_by_label("Payload (JSON)")).to_have_value("{}")

    await form.get_by_label("Payload (JSON)").fill("{by: ann}")
    await form.get_by_role("button", name="Send").click()
    await expect(form.get_by_role("alert")).to_contain_text("The payload is not JSON")
    assert sent == []
    await still_awaiting(client, workflow_id)

    await form.get_by_label("Payload (JSON)").fill('{"by": "ann", "markup": "<b>x</b>"}')
    await expect(form.get_by_role("alert")).to_have_count(0)  # the verdict went with the edit
    await tab.shot("signal-form")
    await form.get_by_role("button", name="Send").click()
    await expect(tab.page.locator(".run-head .badge")).to_have_text("completed")
    await expect(node(tab, "send")).to_have_attribute("data-state", "done")
    await expect(form).to_be_hidden()  # the task no longer awaits
    details = tab.page.locator("section.details")
    await expect(details.locator('pre[data-part="result"]')).to_contain_text('"<b>x</b>"')
    state = await client.get(workflow_id)
    assert state.results["approve"] == {"by": "ann", "markup": "<b>x</b>"}
    assert len(sent) == 1
    assert sent[0].method == "POST"
    assert sent[0].url.endswith(f"/workflows/{workflow_id}/signals/approval")
    assert UUID.match(await sent[0].header_value("Idempotency-Key") or "")
    await tab.shot("signal-sent")
    assert tab.errors == []


async def test_a_read_token_is_shown_the_refusal_and_signals_nothing(
    engine: Engine, tab: Tab, client: Client
) -> None:
    workflow_id = await awaiting_approval(tab, token=READER)
    form = tab.page.locator('form[data-part="signal"]')
    await form.get_by_label("Payload (JSON)").fill('"yes"')
    await form.get_by_role("button", name="Send").click()
    await expect(form.get_by_role("alert")).to_have_text("403: this token lacks the 'submit' scope")
    await expect(form.get_by_role("button", name="Send")).to_be_disabled()
    await tab.shot("signal-refused")
    await still_awaiting(client, workflow_id)  # refused: nothing applied, nothing kept
    assert tab.errors == []


async def redrawn(tab: Tab, client: Client, workflow_id: str, tick: str) -> None:
    """Another task of the run ends, and the page is redrawn for it."""
    await client.signal(workflow_id, tick, "go")
    await expect(node(tab, tick)).to_have_attribute("data-state", "done")


async def test_a_click_under_way_and_what_is_typed_outlive_a_redraw(
    engine: Engine, tab: Tab, client: Client
) -> None:
    """Every lifecycle event of the run redraws the page, and a redraw moves nothing a user is
    working in: a click pressed (not yet released) on a node or on Send still lands, and the
    payload being typed keeps its text and its caret."""
    workflow_id = await submit(tab.base, BESIDE)
    await tab.open(f"#/workflows/{workflow_id}")
    await expect(node(tab, "tick3")).to_have_attribute("data-state", "awaiting")
    await node(tab, "approve").hover()
    await tab.page.mouse.down()
    await redrawn(tab, client, workflow_id, "tick1")
    await tab.page.mouse.up()
    form = tab.page.locator('form[data-part="signal"]')
    payload = form.get_by_label("Payload (JSON)")
    await expect(payload).to_have_value("{}")

    await payload.focus()
    await tab.page.keyboard.press("ControlOrMeta+A")
    await tab.page.keyboard.type("{by: ")
    await redrawn(tab, client, workflow_id, "tick2")
    await tab.page.keyboard.type("ann}")
    await expect(payload).to_have_value("{by: ann}")
    await expect(payload).to_be_focused()

    await form.get_by_role("button", name="Send").hover()
    await tab.page.mouse.down()
    await redrawn(tab, client, workflow_id, "tick3")
    await tab.page.mouse.up()
    await expect(form.get_by_role("alert")).to_contain_text("The payload is not JSON")
    await still_awaiting(client, workflow_id)
    assert tab.errors == []
