"""Evaluate and adjust: an agent that finds an upstream result weak has that task run again
with a new input, followed only by what depends on it, within the workflow's round limit."""

from __future__ import annotations

from collections import Counter
from typing import Any

from redis.asyncio import Redis

from streamproc import Client
from tests.conftest import Engine

SHORT = "too short"
LONG = "a result long enough to satisfy the judge, well over fifty characters"


def seed_like(adjusted_text: str, rounds: int, target: str = "b") -> dict[str, Any]:
    """a -> b -> (judge c, d), plus e beside them: only b, c and d may run again."""
    return {
        "adjust_rounds": rounds,
        "tasks": [
            {"id": "a", "agent": "ledger"},
            {"id": "e", "agent": "ledger", "needs": ["a"]},
            {"id": "b", "agent": "writer", "input": {"text": SHORT}, "needs": ["a"]},
            {
                "id": "c",
                "agent": "judge",
                "input": {"adjust": {target: {"text": adjusted_text}}},
                "needs": ["b"],
            },
            {"id": "d", "agent": "ledger", "needs": ["b"]},
        ],
    }


async def runs(redis: Redis, workflow_id: str) -> Counter[str]:
    entries = await redis.lrange(f"ledger:{workflow_id}", 0, -1)
    return Counter(entry.decode().split()[0] for entry in entries)


async def test_a_weak_result_reruns_the_adjusted_task_and_only_its_dependents(
    engine: Engine, client: Client, redis: Redis
) -> None:
    workflow_id = await client.submit(seed_like(LONG, rounds=2))
    state = await client.wait(workflow_id, timeout=20)
    assert state.status == "completed"
    tasks = {t.id: t for t in state.tasks}
    assert state.results["b"] == LONG
    assert state.results["c"] == "satisfied"
    executed = await runs(redis, workflow_id)
    assert executed["a"] == 1 and executed["e"] == 1  # upstream and beside: untouched
    assert tasks["a"].attempt == 1 and tasks["e"].attempt == 1
    assert executed["b"] == 2 and tasks["b"].attempt == 2
    assert executed["c"] == 2 and tasks["c"].attempt == 2
    assert tasks["d"].attempt == 2  # reset with b, whatever state the first attempt was in
    adjusted = [h for h in tasks["b"].history if h["outcome"] == "adjusted"]
    assert adjusted == [
        {
            "attempt": 1,
            "outcome": "adjusted",
            "reason": "result of b under 50 characters",
            "by": "c",
            "round": 1,
            "previous": f'"{SHORT}"',
            "at": adjusted[0]["at"],
        }
    ]
    assert [h["outcome"] for h in tasks["c"].history] == ["reset"]
    events = await redis.xrange(client.keyspace.events(0))
    kinds = [(f[b"kind"], f.get(b"task")) for _, f in events if f[b"wf"] == workflow_id.encode()]
    assert kinds.count((b"task_adjusted", b"b")) == 1
    assert kinds[-1] == (b"completed", None)


async def test_adjustment_stops_at_the_round_limit_and_keeps_the_last_result(
    engine: Engine, client: Client, redis: Redis
) -> None:
    workflow_id = await client.submit(seed_like(SHORT, rounds=2))  # never gets better
    state = await client.wait(workflow_id, timeout=20)
    assert state.status == "completed"
    tasks = {t.id: t for t in state.tasks}
    assert tasks["b"].attempt == 3  # the first run and two adjusted rounds
    assert (await runs(redis, workflow_id))["b"] == 3
    assert state.results["c"] == "weak"
    refused = [h for h in tasks["c"].history if h["outcome"] == "adjust refused"]
    assert len(refused) == 1
    assert refused[0]["refusal"] == "round limit 2 reached for b"
    assert [h["round"] for h in tasks["b"].history if h["outcome"] == "adjusted"] == [1, 2]


async def test_zero_rounds_means_weak_results_are_kept(engine: Engine, client: Client) -> None:
    state = await client.wait(await client.submit(seed_like(LONG, rounds=0)), timeout=20)
    assert state.status == "completed"
    assert state.results["b"] == SHORT and state.results["c"] == "weak"
    assert all(t.attempt == 1 for t in state.tasks)


async def test_an_adjustment_of_a_task_not_upstream_is_refused(
    engine: Engine, client: Client
) -> None:
    state = await client.wait(await client.submit(seed_like(LONG, 3, target="e")), timeout=20)
    assert state.status == "completed"
    tasks = {t.id: t for t in state.tasks}
    assert tasks["e"].attempt == 1 and tasks["b"].attempt == 1
    (refused,) = [h for h in tasks["c"].history if h["outcome"] == "adjust refused"]
    assert refused["refusal"] == "task e is not upstream of c"
