"""Waits for signals: a declared wait task takes a signal's payload as its result, an agent's
WaitFor runs it again with the payload; a timeout fails the task or takes its default."""

from __future__ import annotations

import re
from typing import Any

import pytest
from redis.asyncio import Redis

from streamproc import (
    Client,
    ClientSettings,
    Conflict,
    Keyspace,
    SpecError,
    SyncClient,
    WorkflowNotFound,
    WorkflowSpec,
)
from streamproc.errors import BadSignal, SignalTooLarge
from streamproc.ops.history import snapshot
from streamproc.store.signals import MAX_SIGNAL_BYTES
from tests import wait_agents
from tests.conftest import Engine, eventually

GATED = {
    "tasks": [
        {"id": "draft", "agent": "echo", "input": "text"},
        {"id": "approve", "wait_for": "approval", "timeout": 3600, "needs": ["draft"]},
        {"id": "send", "agent": "echo", "needs": ["approve"]},
    ]
}


def asking(signal: str = "go", **extra: Any) -> dict[str, Any]:
    return {"tasks": [{"id": "ask", "agent": "asker", "input": {"signal": signal, **extra}}]}


async def state_of(client: Client, workflow_id: str, task: str) -> str:
    return next(t.state for t in (await client.get(workflow_id)).tasks if t.id == task)


async def history_kinds(redis: Redis, client: Client, workflow_id: str) -> list[bytes]:
    kept = await snapshot(redis, client.keyspace, workflow_id)  # archive and stream alike
    return [fields[b"kind"] for _, fields in kept.history]


@pytest.fixture
async def waiting_engine(engine: Engine) -> Engine:
    engine.start_worker(("asker",))
    return engine


async def test_a_declared_wait_takes_the_signal_payload_as_its_result(
    waiting_engine: Engine, client: Client, redis: Redis
) -> None:
    workflow_id = await client.submit(GATED)
    await eventually(lambda: is_in(client, workflow_id, "approve", "awaiting"))
    sent = await client.signal(workflow_id, "approval", {"by": "ann"}, signal_id="s1")
    assert (sent.outcome, sent.task) == ("applied", "approve")
    state = await client.wait(workflow_id, timeout=20)
    assert state.status == "completed"
    assert state.results["approve"] == {"by": "ann"}
    assert state.results["send"]["deps"] == {"approve": {"by": "ann"}}
    again = await client.signal(workflow_id, "approval", {"by": "bob"}, signal_id="s1")
    assert again.outcome == "duplicate"  # applied once, even after the workflow ended
    kinds = await history_kinds(redis, client, workflow_id)
    assert kinds.count(b"signalled") == 1
    assert kinds.index(b"task_awaiting") < kinds.index(b"signalled")


async def test_a_signal_sent_before_its_wait_begins_is_kept_then_taken(
    waiting_engine: Engine, client: Client
) -> None:
    spec = {"tasks": [{**GATED["tasks"][0], "agent": "sleep", "input": 0.3}, *GATED["tasks"][1:]]}
    workflow_id = await client.submit(spec)
    sent = await client.signal(workflow_id, "approval", "yes")
    assert sent.outcome == "kept"
    pending = (await client.get(workflow_id)).signals
    assert [(s["name"], s["id"], s["size"]) for s in pending] == [("approval", sent.id, 5)]
    state = await client.wait(workflow_id, timeout=20)
    assert state.results["approve"] == "yes"
    assert state.signals == []


@pytest.mark.parametrize("returned", [False, True])
async def test_an_agent_waits_for_a_signal_and_runs_again_with_its_payload(
    waiting_engine: Engine, client: Client, returned: bool
) -> None:
    workflow_id = await client.submit(asking(returned=returned))
    await eventually(lambda: is_in(client, workflow_id, "ask", "awaiting"))
    await client.signal(workflow_id, "go", [1, 2])
    state = await client.wait(workflow_id, timeout=20)
    assert state.results["ask"] == {"signal": [1, 2], "attempt": 2}
    assert [a for wf, a in wait_agents.RUNS if wf == workflow_id] == [1, 2]
    assert state.tasks[0].history[-1]["outcome"] == "await"


async def test_a_signal_with_no_payload_resumes_an_agent_once(
    waiting_engine: Engine, client: Client
) -> None:
    """The payload is None then, as before any signal: ``task.resumed`` tells them apart."""
    workflow_id = await client.submit(asking())
    await eventually(lambda: is_in(client, workflow_id, "ask", "awaiting"))
    await client.signal(workflow_id, "go")
    state = await client.wait(workflow_id, timeout=20)
    assert state.results["ask"] == {"signal": None, "attempt": 2}
    assert [a for wf, a in wait_agents.RUNS if wf == workflow_id] == [1, 2]


async def test_a_timeout_fails_the_wait_or_takes_its_default(
    waiting_engine: Engine, client: Client
) -> None:
    short = {**GATED["tasks"][1], "timeout": 0.2}
    failing = await client.submit({"tasks": [GATED["tasks"][0], short]})
    defaulted = await client.submit({"tasks": [GATED["tasks"][0], {**short, "default": "no"}]})
    failed = await client.wait(failing, timeout=20)
    assert failed.status == "failed"
    assert failed.reason == "task approve failed: timed out waiting for signal 'approval'"
    assert failed.tasks[1].error == "timed out waiting for signal 'approval'"
    completed = await client.wait(defaulted, timeout=20)
    assert completed.results["approve"] == "no"
    asked = await client.submit(asking(timeout=0.2))
    dead = await client.wait(asked, timeout=20)
    assert dead.reason == "task ask dead-lettered: timed out waiting for signal 'go'"


async def test_signals_refused(waiting_engine: Engine, client: Client) -> None:
    with pytest.raises(WorkflowNotFound):
        await client.signal("nobody", "approval")
    workflow_id = await client.submit({"tasks": [{"id": "a", "agent": "echo"}]})
    await client.wait(workflow_id, timeout=20)
    with pytest.raises(Conflict, match="is completed: it takes no signals"):
        await client.signal(workflow_id, "approval")
    with pytest.raises(SignalTooLarge, match="over the 65536 limit"):
        await client.signal(workflow_id, "approval", "x" * MAX_SIGNAL_BYTES)
    with pytest.raises(BadSignal, match="invalid signal name"):
        await client.signal(workflow_id, "no spaces")
    with pytest.raises(BadSignal, match="not JSON-serialisable"):
        await client.signal(workflow_id, "approval", object())
    with pytest.raises(BadSignal, match="NaN and Infinity are not JSON numbers"):
        await client.signal(workflow_id, "approval", {"x": float("inf")})


async def is_in(client: Client, workflow_id: str, task: str, state: str) -> bool:
    """For ``eventually``: ``task`` is in ``state`` (a spawned task may not be there yet)."""
    return any(t.id == task and t.state == state for t in (await client.get(workflow_id)).tasks)


@pytest.mark.parametrize(
    ("task", "error"),
    [
        ({"id": "w", "agent": "echo", "wait_for": "ok"}, "either 'agent' or 'wait_for'"),
        ({"id": "w"}, "'agent' must be a name (or give 'wait_for' instead)"),
        ({"id": "w", "wait_for": "no spaces"}, "'wait_for' must be a signal name"),
        ({"id": "w", "agent": "echo", "default": 1}, "'default' is for a wait"),
        ({"id": "w", "wait_for": "ok", "timeout": 0}, "'timeout' must be seconds"),
    ],
)
def test_a_wait_is_declared_with_a_signal_name_and_no_agent(
    task: dict[str, Any], error: str
) -> None:
    with pytest.raises(SpecError, match=re.escape(error)):
        WorkflowSpec.from_dict({"tasks": [task]}).validate()


async def test_cancel_and_deadlines_end_a_wait(
    waiting_engine: Engine, client: Client, redis: Redis
) -> None:
    cancelled = await client.submit(GATED)
    await eventually(lambda: is_in(client, cancelled, "approve", "awaiting"))
    assert await client.cancel(cancelled)
    assert await state_of(client, cancelled, "approve") == "skipped"
    assert await redis.zcard(client.keyspace.delayed(0)) == 0  # its timeout left the set
    overdue = await client.submit({**GATED, "timeout": 0.5})
    state = await client.wait(overdue, timeout=20)
    assert state.reason.startswith(
        "deadline of 0.5s passed: task approve awaiting signal 'approval'; task send"
    )


def test_the_sync_client_signals(redis_url: str, keyspace: Keyspace) -> None:
    with SyncClient(redis_url, ClientSettings(keyspace=keyspace)) as client:
        workflow_id = client.submit({"tasks": [{"id": "s", "agent": "sleep", "input": 30}]})
        assert client.signal(workflow_id, "later", 1).outcome == "kept"
        assert client.get(workflow_id).signals[0]["name"] == "later"
        client.cancel(workflow_id)


async def test_an_adjustment_upstream_of_a_done_wait_makes_it_wait_anew(
    waiting_engine: Engine, client: Client
) -> None:
    long = "a long enough text to pass the judge's fifty character rule"
    spec = {
        "tasks": [
            {"id": "b", "agent": "writer", "input": {"text": "short"}},
            {"id": "gate", "wait_for": "approval", "needs": ["b"], "timeout": 60},
            {
                "id": "c",
                "agent": "judge",
                "input": {"adjust": {"b": {"text": long}}},
                "needs": ["b", "gate"],
            },
        ]
    }
    workflow_id = await client.submit(spec)
    await client.signal(workflow_id, "approval", f"first: {long}")
    await eventually(lambda: _gate_attempt(client, workflow_id, 2))  # b re-ran: gate reset
    await client.signal(workflow_id, "approval", f"second: {long}")
    state = await client.wait(workflow_id, timeout=20)
    assert state.results["gate"] == f"second: {long}"
    assert state.results["c"] == "satisfied"


async def _gate_attempt(client: Client, workflow_id: str, attempt: int) -> bool:
    gate = next(t for t in (await client.get(workflow_id)).tasks if t.id == "gate")
    return gate.attempt == attempt and gate.state == "awaiting"
