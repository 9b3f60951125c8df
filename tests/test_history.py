"""Every state change of a workflow is kept in order with its time, in a history that lives as
long as the workflow (its stream, then its archive), whatever the shared events stream's
retention trims."""

from __future__ import annotations

import re

from redis.asyncio import Redis

from streamproc import Client, Keyspace
from tests.cli_runner import at, run
from tests.conftest import Engine, stowed, with_starts


async def test_history_keeps_every_change_in_order_and_expires_with_the_workflow(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    spec = {
        "tasks": [
            {"id": "a", "agent": "flaky", "input": {"fail": 1}},
            {"id": "b", "agent": "echo", "needs": ["a"]},
        ]
    }
    workflow_id = await client.submit(spec)
    state = await client.wait(workflow_id, timeout=20)
    assert state.status == "completed"
    await redis.xtrim(keyspace.events(0), maxlen=0, approximate=False)  # retention ran
    events = with_starts(await client.history(workflow_id))
    assert [(e["kind"], e.get("task"), e.get("att")) for e in events] == [
        ("submitted", None, None),
        ("task_started", "a", "1"),
        ("task_failed", "a", "1"),
        ("task_retried", "a", "2"),
        ("task_started", "a", "2"),
        ("task_done", "a", "2"),
        ("task_started", "b", "1"),
        ("task_done", "b", "1"),
        ("completed", None, None),
    ]
    assert "retry_ms" in events[2]
    times = [int(e["at"]) for e in events if e["kind"] != "task_started"]
    assert times == sorted(times)
    past_ttl = await redis.pttl(keyspace.past(workflow_id))  # its archive (test_history_archive)
    assert 0 < past_ttl <= 7 * 24 * 3600 * 1000  # the workflow, stowed there, expires with it
    await stowed(redis, keyspace, workflow_id)


async def test_show_history_prints_the_timeline(
    engine: Engine, client: Client, redis_url: str, keyspace: Keyspace
) -> None:
    workflow_id = await client.submit({"tasks": [{"id": "only", "agent": "echo"}]})
    await client.wait(workflow_id, timeout=20)
    result = await run("show", workflow_id, "--history", *at(redis_url, keyspace))
    assert result.code == 0, result
    lines = result.out.splitlines()
    timeline = lines[lines.index("  history:") + 1 :]
    kinds = [line.split()[1] for line in timeline]
    assert kinds in (
        ["submitted", "task_started", "task_done", "completed"],
        ["submitted", "task_done", "completed"],  # its start is in its end's line
    )
    assert "only#1" in timeline[1] and "by=" in timeline[1]
    if kinds[1] == "task_done":
        assert re.search(r"began=\d+\.\d{3}s", timeline[1]), timeline[1]
