"""Waits and signals under faults (rows E9-E12): a worker killed while its tasks wait, redis-server
killed (``appendfsync always``) between signals and the runs they resume, duplicate signals
sent at once, and signals racing their waits' timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Conflict, Keyspace
from streamproc.testing.embedded import EmbeddedRedis
from tests import wait_agents  # noqa: F401  (registers asker, which the engine here serves)
from tests.conftest import Engine, eventually, outage_met, with_starts
from tests.daemon import Daemon
from tests.test_waits import GATED, asking

WAIT_AGENTS = ("--import", "tests.wait_agents")


async def all_in(client: Client, ids: list[str], task: str, state: str) -> bool:
    """For ``eventually``: ``task`` of every one of these workflows is in ``state``."""
    states = [await client.get(workflow_id) for workflow_id in ids]
    return all(t.state == state for s in states for t in s.tasks if t.id == task)


async def kinds_of(client: Client, workflow_id: str) -> list[str]:
    return [event["kind"] for event in with_starts(await client.history(workflow_id))]


async def test_a_worker_killed_while_its_tasks_wait_leaves_the_waits_holding(
    redis_url: str,
    keyspace: Keyspace,
    client: Client,
    redis: Redis,
    worker_processes: Callable[..., Daemon],
) -> None:
    engine = Engine(redis_url, keyspace)
    engine.start_resolver()
    doomed = worker_processes("asker", *WAIT_AGENTS)
    try:
        ids = await client.submit_many([asking() for _ in range(5)])
        await eventually(lambda: all_in(client, ids, "ask", "awaiting"))
        doomed.kill()
        pending = await redis.xpending(keyspace.tasks(0, "asker"), "asker")
        assert pending["pending"] == 0  # the dead worker held no wait: nothing to reclaim
        engine.start_worker(("asker",))
        for workflow_id in ids:
            assert (await client.signal(workflow_id, "go", workflow_id)).outcome == "applied"
        for workflow_id in ids:
            state = await client.wait(workflow_id, timeout=20)
            assert state.results["ask"] == {"signal": workflow_id, "attempt": 2}
            assert (await kinds_of(client, workflow_id)).count("task_started") == 2  # ran twice
    finally:
        await engine.stop()


async def test_redis_killed_between_signals_and_their_resumes_applies_each_once(
    keyspace: Keyspace, caplog: pytest.LogCaptureFixture
) -> None:
    with EmbeddedRedis(None, None, "--appendfsync", "always") as server:
        engine = Engine(server.url, keyspace)
        engine.start_resolver()
        engine.start_worker(("asker", "echo", "sleep"))
        try:
            async with Client(server.url, ClientSettings(keyspace=keyspace)) as client:
                asked = await client.submit_many([asking() for _ in range(10)])
                early = [{"id": "draft", "agent": "sleep", "input": 0.5}, *GATED["tasks"][1:]]
                gated = await client.submit_many([{"tasks": early} for _ in range(5)])
                await eventually(lambda: all_in(client, asked, "ask", "awaiting"))
                for workflow_id in asked + gated:
                    await client.signal(
                        workflow_id,
                        "go" if workflow_id in asked else "approval",
                        "yes",
                        signal_id=f"s-{workflow_id}",
                    )
                caplog.clear()
                server.kill()  # acknowledged signals; resumed runs not yet (all) done
                await outage_met(caplog)  # an outage the daemons must ride out
                server.start()
                for workflow_id in asked + gated:
                    state = await client.wait(workflow_id, timeout=60)
                    assert state.status == "completed", state
                    again = await client.signal(workflow_id, "x", signal_id=f"s-{workflow_id}")
                    assert again.outcome == "duplicate"
                    kinds = await kinds_of(client, workflow_id)
                    assert kinds.count("signalled") == 1
                for workflow_id in asked:
                    state = await client.get(workflow_id)
                    assert state.results["ask"] == {"signal": "yes", "attempt": 2}
                for workflow_id in gated:
                    assert (await client.get(workflow_id)).results["approve"] == "yes"
        finally:
            await engine.stop()


async def test_duplicate_signals_sent_at_once_apply_once(engine: Engine, client: Client) -> None:
    workflow_id = await client.submit(GATED)
    sent = await asyncio.gather(
        *(client.signal(workflow_id, "approval", i, signal_id="once") for i in range(10))
    )
    assert sorted(s.outcome for s in sent).count("duplicate") == 9
    state = await client.wait(workflow_id, timeout=20)
    first = next(s for s in sent if s.outcome != "duplicate")
    assert state.results["approve"] == sent.index(first)
    assert (await kinds_of(client, workflow_id)).count("signalled") == 1


async def test_a_signal_racing_its_waits_timeout_either_wins_or_loses_whole(
    engine: Engine, client: Client
) -> None:
    """Timeouts from 0.1 s to 0.67 s; the signals go once the sixth has fallen due, so the
    earliest lose, the latest win, and those near the moment race."""
    specs = [
        {"tasks": [{"id": "approve", "wait_for": "approval", "timeout": 0.1 + 0.03 * i}]}
        for i in range(20)
    ]
    ids = await client.submit_many(specs)
    await eventually(lambda: all_in(client, ids[5:6], "approve", "failed"), interval=0.01)
    outcomes = await asyncio.gather(
        *(client.signal(workflow_id, "approval", "yes") for workflow_id in ids),
        return_exceptions=True,
    )
    lost = [isinstance(outcome, Conflict) for outcome in outcomes]
    assert lost[0] and not lost[-1], outcomes
    for workflow_id, outcome in zip(ids, outcomes, strict=True):
        state = await client.wait(workflow_id, timeout=20)
        kinds = await kinds_of(client, workflow_id)
        if isinstance(outcome, Conflict):  # the timeout won
            assert state.status == "failed" and "signalled" not in kinds
            assert kinds.count("wait_timed_out") == 1
        else:  # the signal won
            assert not isinstance(outcome, BaseException), outcome
            assert outcome.outcome == "applied"
            assert state.results["approve"] == "yes" and "wait_timed_out" not in kinds
            assert kinds.count("signalled") == 1
