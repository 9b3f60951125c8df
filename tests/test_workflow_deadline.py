"""A workflow-level ``timeout``: past it, a workflow still running fails, naming what it
waited for; one that ended first is left alone."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from streamproc import Client, Keyspace
from streamproc.errors import SpecError
from streamproc.spec import WorkflowSpec
from streamproc.spec_checks import MAX_TIMEOUT
from tests.conftest import Engine


async def test_a_workflow_nobody_serves_fails_at_its_deadline_naming_the_agent(
    resolver_only: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    async with Client(client.redis_settings, client.settings) as plain:
        workflow_id = await plain.submit({"timeout": 1, "tasks": [{"id": "t", "agent": "nope"}]})
    state = await client.wait(workflow_id, timeout=15)
    assert state.status == "failed"
    assert state.reason == (
        "deadline of 1s passed: task t (agent nope) waiting, no consumer serves it"
    )
    assert await redis.zcard(keyspace.deadlines(0)) == 0


async def test_a_workflow_that_completes_before_its_deadline_is_not_failed_later(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    workflow_id = await client.submit({"timeout": 1, "tasks": [{"id": "t", "agent": "echo"}]})
    assert (await client.wait(workflow_id, timeout=15)).status == "completed"
    assert await redis.zcard(keyspace.deadlines(0)) == 0
    async with Client(client.redis_settings, client.settings) as plain:
        later = await plain.submit({"timeout": 1, "tasks": [{"id": "t", "agent": "nope"}]})
    assert (await client.wait(later, timeout=15)).status == "failed"  # its deadline is later
    assert (await client.get(workflow_id)).status == "completed"
    assert (await client.history(workflow_id))[-1]["kind"] == "completed"


@pytest.mark.parametrize("timeout", [0, -1, True, "1", MAX_TIMEOUT + 1, float("nan")])
def test_a_workflow_timeout_must_be_positive_seconds_within_the_bound(timeout: object) -> None:
    spec = WorkflowSpec.from_dict({"timeout": timeout, "tasks": [{"id": "t", "agent": "echo"}]})
    with pytest.raises(SpecError, match="workflow 'timeout' must be seconds in"):
        spec.validate()
