"""A spawned declared wait: a planner adds a task that waits for a signal, as a spec declares
one (``wait_for``, no agent).  It waits once its needs are done, counts as awaiting, takes a
signal's payload or its default, is skipped by a cancel and superseded by an adjustment; a
spawn that breaks a rule of declared waits is refused in one line."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace, Spawn, WorkflowState
from streamproc.engine.spawning import encode_spawn
from streamproc.ops.status import declared_waits
from streamproc.store.fields import TaskField, WorkflowField
from streamproc.store.folded import hmget_many
from tests.cli_runner import at, run
from tests.conftest import Engine, eventually
from tests.test_duplicate_events import completion
from tests.test_replay import replayed_id
from tests.test_signal_edges import live_replay_signalled
from tests.test_spawn import plan, refused
from tests.test_waits import is_in, state_of

APPROVE = {"id": "approve", "wait_for": "approval", "timeout": 3600}
SEND = {"id": "send", "agent": "echo", "input": "mail", "needs": ["approve"]}


async def test_a_spawned_wait_awaits_a_signal_whose_payload_its_dependents_receive(
    engine: Engine, client: Client, redis: Redis, redis_url: str, keyspace: Keyspace
) -> None:
    workflow_id = await client.submit(plan([APPROVE, SEND]))
    await eventually(lambda: is_in(client, workflow_id, "approve", "awaiting"))
    waiting = await client.get(workflow_id)
    tasks = {t.id: t for t in waiting.tasks}
    assert [t.id for t in waiting.tasks] == ["plan", "reduce", "approve", "send"]
    assert (tasks["approve"].agent, tasks["approve"].wait_for) == ("", "approval")
    assert (tasks["approve"].spawner, tasks["send"].state) == ("plan", "waiting")
    assert await declared_waits(redis, client.keyspace) == 1
    [[agents]] = await hmget_many(redis, client.keyspace, [(workflow_id, [WorkflowField.AGENTS])])
    assert agents == b"echo planner"  # a wait runs no agent: none joins
    show = await run("show", workflow_id, *at(redis_url, keyspace))
    assert "approve" in show.out and "signal approval" in show.out, show

    sent = await client.signal(workflow_id, "approval", {"by": "ann"})
    assert (sent.outcome, sent.task) == ("applied", "approve")
    state = await client.wait(workflow_id, timeout=20)
    assert state.status == "completed", state.reason
    assert state.results["approve"] == {"by": "ann"}
    assert state.results["send"]["deps"] == {"plan": "planned", "approve": {"by": "ann"}}
    assert set(state.results["reduce"]["deps"]) == {"plan", "approve", "send"}
    assert await declared_waits(redis, client.keyspace) == 0


async def test_a_spawned_wait_with_a_timeout_takes_its_default_or_fails(
    engine: Engine, client: Client, redis: Redis
) -> None:
    short = {**APPROVE, "timeout": 0.2}
    defaulted = await client.submit(plan([{**short, "default": {"ok": False}}, SEND]))
    state = await client.wait(defaulted, timeout=20)
    assert state.status == "completed", state.reason
    assert state.results["send"]["deps"]["approve"] == {"ok": False}
    failing = await client.wait(await client.submit(plan([short])), timeout=20)
    assert failing.reason == "task approve failed: timed out waiting for signal 'approval'"
    assert await declared_waits(redis, client.keyspace) == 0


@pytest.mark.parametrize(
    ("task", "fixed", "reason"),
    [
        (
            {**APPROVE, "agent": "echo"},
            APPROVE,
            "task 'approve': a task has either 'agent' or 'wait_for', not both",
        ),
        (
            {**APPROVE, "wait_for": "no spaces"},
            APPROVE,
            "task 'approve': 'wait_for' must be a signal name of 1-128 characters "
            "from A-Z a-z 0-9 _ . -",
        ),
        (
            {"id": "q0", "agent": "echo", "default": 1},
            {"id": "q0", "wait_for": "ok", "default": 1},
            "task 'q0': 'default' is for a wait ('wait_for') only",
        ),
        ({**APPROVE, "map": "plan"}, APPROVE, "task 'approve': a wait cannot also 'map'"),
    ],
)
async def test_a_spawned_wait_breaking_a_rule_of_declared_waits_is_refused(
    engine: Engine,
    client: Client,
    redis: Redis,
    task: dict[str, Any],
    fixed: dict[str, Any],
    reason: str,
) -> None:
    assert await refused(client, redis, plan([task])) == f"spawn from plan refused: {reason}"
    assert encode_spawn(Spawn([fixed]), "plan", None, 1 << 20)  # that rule was all it broke


async def test_an_agent_task_keeps_the_seven_element_encoding_and_a_wait_adds_two() -> None:
    encoded = encode_spawn(Spawn([{**APPROVE, "default": "no"}, SEND]), "plan", None, 1 << 20)
    assert orjson.loads(encoded) == [
        ["approve", "", "null", [], 2, "3600.0", "", "approval", '"no"'],
        ["send", "echo", '"mail"', ["approve"], 2, "", ""],
    ]


async def spawned_by_hand(client: Client, redis: Redis, spawn: list[list[Any]]) -> str:
    """A workflow whose task plan (agent ``manual``, which no worker serves) completes with
    ``spawn``, encoded as written: the resolver's side of the encoding, without the worker's."""
    workflow_id = await client.submit({"tasks": [{"id": "plan", "agent": "manual"}]})
    done = {**completion(workflow_id, "plan", 1), "kind": "spawn", "spawn": orjson.dumps(spawn)}
    await redis.xadd(client.keyspace.done(0), done)
    return workflow_id


async def test_the_resolver_applies_both_forms_and_refuses_a_malformed_wait(
    engine: Engine, redis_url: str, keyspace: Keyspace, redis: Redis
) -> None:
    async with Client(redis_url, ClientSettings(keyspace=keyspace)) as client:
        old = ["q0", "manual", "0", [], 2, "", ""]  # as workers of 0.3 write an agent's task
        wait = ["w", "", "null", ["q0"], 2, "", "", "ok", '"no"']
        workflow_id = await spawned_by_hand(client, redis, [old, wait])
        await eventually(lambda: is_in(client, workflow_id, "q0", "queued"))
        assert await state_of(client, workflow_id, "w") == "waiting"
        await redis.xadd(client.keyspace.done(0), completion(workflow_id, "q0", 1))
        await eventually(lambda: is_in(client, workflow_id, "w", "awaiting"))
        await client.signal(workflow_id, "ok", "yes")
        state = await client.wait(workflow_id, timeout=20)
        assert (state.status, state.results["w"]) == ("completed", "yes")
        for bad in (
            ["w", "manual", "null", [], 2, "", "", "ok", ""],  # an agent and a signal
            ["w", "", "null", [], 2, "", "", "no spaces", ""],
            ["w", "", "null", [], 2, "", "plan", "ok", ""],  # a wait that maps
            ["w", "", "null", [], 2, "", "", "ok"],  # no default element
            ["w", "manual", "null", [], 2, "", "", None, ""],
        ):
            failed = await client.wait(await spawned_by_hand(client, redis, [bad]), timeout=20)
            assert (
                failed.reason == "task plan dead-lettered: spawn from plan refused: malformed spawn"
            )


async def test_cancel_skips_a_spawned_wait_and_an_adjustment_supersedes_it(
    engine: Engine, client: Client, redis: Redis
) -> None:
    cancelled = await client.submit(plan([APPROVE, SEND]))
    await eventually(lambda: is_in(client, cancelled, "approve", "awaiting"))
    assert await client.cancel(cancelled)
    assert await state_of(client, cancelled, "approve") == "skipped"
    assert await redis.zcard(client.keyspace.delayed(0)) == 0  # its timeout left the set
    assert await declared_waits(redis, client.keyspace) == 0

    # check, spawned beside approve, re-runs plan while approve awaits: plan's spawn is
    # superseded and its second spawn adds approve again, as an agent's task
    again = [{"id": "approve", "agent": "echo", "input": "no wait"}]
    check = {"id": "check", "agent": "judge", "input": {"adjust": {"plan": {"spawn": again}}}}
    adjusted = await client.submit(plan([{**APPROVE, "default": "late"}, check]))
    state = await client.wait(adjusted, timeout=20)
    assert state.status == "completed", state.reason
    tasks = {t.id: t for t in state.tasks}
    assert [r["outcome"] for r in tasks["approve"].history] == ["superseded"]
    assert (tasks["approve"].agent, tasks["approve"].wait_for) == ("echo", "")
    assert (tasks["approve"].attempt, tasks["check"].state) == (2, "superseded")
    assert state.results["approve"]["input"] == "no wait"
    gone = [TaskField.WAIT_FOR.of("approve"), TaskField.DEFAULT.of("approve")]
    kept = await hmget_many(redis, client.keyspace, [(adjusted, gone)])
    assert kept == [[None, None]]  # the wait's fields went with it
    assert await declared_waits(redis, client.keyspace) == 0
    assert await redis.zcard(client.keyspace.delayed(0)) == 0


async def test_a_run_with_a_spawned_wait_replays_from_the_record_and_live(
    engine: Engine, client: Client, redis_url: str, keyspace: Keyspace
) -> None:
    workflow_id = await client.submit(plan([APPROVE, SEND]))
    await eventually(lambda: is_in(client, workflow_id, "approve", "awaiting"))
    await client.signal(workflow_id, "approval", "yes")
    original: WorkflowState = await client.wait(workflow_id, timeout=20)
    assert original.status == "completed", original.reason
    result = await run("replay", "run", workflow_id, *at(redis_url, keyspace))
    assert result.code == 0, result  # no signal needed: the record holds its result
    assert f"no difference between {workflow_id} and " in result.out
    again = await client.get(await replayed_id(result.err))
    assert again.results == original.results
    live = ["--from-task", "approve", "--import", "tests.agents_for_tests"]
    # plan spawns approve again from the record, and approve waits, live, for a signal
    where = at(redis_url, keyspace)
    replayed = await live_replay_signalled(client, [workflow_id, *live, *where], "again")
    state = await client.get(replayed)
    assert state.results["send"]["deps"]["approve"] == "again"
    assert {t.id: t.agent for t in state.tasks} == {
        "plan": "replay",
        "reduce": "echo",
        "approve": "",
        "send": "echo",
    }
