"""Row E3: an oversize entry written straight into a task stream.  E1, E2 (duplicate and
malformed events) are in tests/test_duplicate_events.py and tests/test_dead_letters.py, E4-E6
(invalid DAGs, junk ids, hostile YAML) in tests/test_spec_errors.py; the decoders are fuzzed in
test_fuzz_decoders.py."""

from __future__ import annotations

from redis.asyncio import Redis

from conftest import Engine, eventually
from faults import oracle
from streamproc import Client, ClientSettings, Keyspace

TWENTY_MB = b"x" * (20 << 20)


async def test_e3_direct_xadd_of_a_20mb_field_is_dead_lettered_and_the_worker_lives(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace, redis_url: str
) -> None:
    stream = keyspace.tasks(0, "echo")
    await redis.xadd(stream, {"v": "1", "blob": TWENTY_MB})
    unserved = await _unserved_echo(redis_url, keyspace, redis)
    await redis.xadd(
        stream,
        {"v": "1", "wf": unserved, "task": "a", "agent": "echo", "att": "1", "in": TWENTY_MB},
    )
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


async def _unserved_echo(redis_url: str, keyspace: Keyspace, redis: Redis) -> str:
    """A workflow whose task ``a`` is queued as echo's attempt 1, but never published to
    echo's stream (so only the test's hand-written entry carries it)."""
    async with Client(redis_url, ClientSettings(keyspace=keyspace)) as plain:
        workflow_id = await plain.submit({"tasks": [{"id": "a", "agent": "nobody"}]})
    await redis.hset(keyspace.workflow(workflow_id), "g:a", "echo")
    return workflow_id
