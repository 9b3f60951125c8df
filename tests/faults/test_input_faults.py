"""Rows D6 and E3: a fan-out bomb of 50 000 tasks refused at submit, and an oversize entry
written straight into a task stream.  E1, E2 (duplicate and malformed events) are in
tests/test_duplicate_events.py and tests/test_dead_letters.py, E4-E6 (invalid DAGs, junk ids,
hostile YAML) in tests/test_spec_errors.py; the decoders are fuzzed in test_fuzz_decoders.py.

D6's other half, a task emitting 10^5 children at run time, has nothing to aim at: an agent
cannot add tasks to its workflow (an ``Adjust`` re-runs one that exists), so every task a
workflow will ever run passed the submit-time limits.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from streamproc import Client, Keyspace, Limits
from streamproc.errors import SpecError
from streamproc.http.app import make_app
from streamproc.http.auth import ApiSettings
from tests.cli_runner import ECHO_AGENTS, at, run
from tests.conftest import Engine, eventually, publish_by_hand, unserved_workflow
from tests.faults import oracle

TWENTY_MB = b"x" * (20 << 20)
TOKEN = "d6-token-for-the-fault-tests"  # noqa: S105 (a test token)
BOMB = 50_000
MAX = Limits().max_tasks


async def test_e3_direct_xadd_of_a_20mb_field_is_dead_lettered_and_the_worker_lives(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    stream = keyspace.tasks(0, "echo")
    await redis.xadd(stream, {"v": "1", "blob": TWENTY_MB})
    unserved = await unserved_workflow(client, redis, "echo")
    entry = {"v": "1", "wf": unserved, "task": "a", "agent": "echo", "att": "1", "in": TWENTY_MB}
    await publish_by_hand(redis, keyspace, unserved, entry)
    [(_, parked)] = await eventually(lambda: redis.xrange(keyspace.dead(0, "echo"), count=1))
    assert parked[b"reason"] == b"malformed entry: payload too large" and parked[b"entry"]
    failed = await client.wait(unserved, timeout=20)
    assert failed.status == "failed"
    assert failed.reason == "task a dead-lettered: malformed task entry: payload too large"
    healthy = await client.submit({"tasks": [{"id": "a", "agent": "echo", "input": 1}]})
    verdict = await oracle.check(client, redis, [unserved, healthy], agents=["echo"])
    verdict.assert_invariants()
    assert verdict.statuses == {"failed": 1, "completed": 1} and verdict.dlq_total == 2
    assert not any(task.done() for task in engine.tasks), "worker and resolver alive"


def fan_out(tasks: int) -> dict[str, Any]:
    """One root and ``tasks - 1`` echo tasks that each need it."""
    rest = [{"id": f"t{i}", "agent": "echo", "needs": ["t0"]} for i in range(1, tasks)]
    return {"tasks": [{"id": "t0", "agent": "echo"}, *rest]}


async def _nothing_written(redis: Redis, keyspace: Keyspace) -> bool:
    """No workflow hash and no task stream in the namespace."""
    for kind in ("wf", "tasks"):
        async for _ in redis.scan_iter(match=f"*{keyspace.namespace}*:{kind}:*"):
            return False
    return True


async def test_d6_a_fan_out_bomb_is_refused_by_the_client_naming_the_limit(
    client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    bomb = fan_out(BOMB)
    tracemalloc.start()
    try:
        with pytest.raises(SpecError, match=f"^{BOMB} tasks: at most {MAX} per workflow$"):
            await client.submit(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"refusing took {peak} bytes"
    needy = {"id": "b", "agent": "echo", "needs": ["a"] * (Limits().max_edges + 1)}
    edges = {"tasks": [{"id": "a", "agent": "echo"}, needy]}
    with pytest.raises(
        SpecError, match=f"^more than {Limits().max_edges} dependencies in one workflow$"
    ):
        await client.submit(edges)
    assert await _nothing_written(redis, keyspace)


async def test_d6_a_fan_out_bomb_is_a_4xx_from_the_api_naming_the_limit(
    client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    body = orjson.dumps(fan_out(BOMB))
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    # 50 000 tasks do not fit the default 1 MiB body: 413 before any parsing.
    app = make_app(client, ApiSettings.with_tokens([TOKEN]))
    async with TestClient(TestServer(app)) as http:
        response = await http.post("/workflows", data=body, headers=headers)
        assert response.status == 413
        assert await response.json() == {"error": f"body of {len(body)} bytes is over 1048576"}
    # With room for the body, the spec limit refuses it.
    roomy = make_app(client, ApiSettings.with_tokens([TOKEN], client_max_size=8 << 20))
    async with TestClient(TestServer(roomy)) as http:
        response = await http.post("/workflows", data=body, headers=headers)
        assert response.status == 400
        assert await response.json() == {"error": f"{BOMB} tasks: at most {MAX} per workflow"}
    assert await _nothing_written(redis, keyspace)


async def test_d6_a_fan_out_bomb_is_refused_by_the_cli_with_one_line(
    tmp_path: Path, redis_url: str, keyspace: Keyspace, redis: Redis
) -> None:
    bomb, over = tmp_path / "bomb.json", tmp_path / "over.json"
    bomb.write_bytes(orjson.dumps(fan_out(BOMB)))
    over.write_bytes(orjson.dumps(fan_out(MAX + 1)))  # under the file size cap: the count
    refused = await run("submit", *ECHO_AGENTS, str(bomb), *at(redis_url, keyspace))
    assert refused.code != 0 and refused.out == ""
    assert refused.err.strip() == f"error: {bomb}: larger than 1048576 bytes", refused.err
    refused = await run("submit", *ECHO_AGENTS, str(over), *at(redis_url, keyspace))
    assert refused.code != 0 and refused.out == ""
    assert refused.err.strip() == f"error: {MAX + 1} tasks: at most {MAX} per workflow", refused.err
    assert await _nothing_written(redis, keyspace)
