"""``ClientSettings(replicas=N)``: each submit is followed by WAIT, against a real primary and
replica.  A submission it returns has reached the replica; fewer replicas than asked raise
``NotReplicated``, with the submission on the primary all the same (row B6 fails over)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import NoPermissionError

from streamproc import Client, ClientSettings, ConfigError, Keyspace
from streamproc.errors import NotDurable, NotReplicated
from streamproc.store.fields import WorkflowField
from streamproc.store.state import WorkflowStatus
from streamproc.testing.embedded import EmbeddedRedis
from tests.conftest import eventually
from tests.faults.replication import PRIMARY, in_sync, replica_of

SPEC = {"tasks": [{"id": "a", "agent": "echo"}]}


@pytest.fixture
async def pair() -> AsyncIterator[tuple[EmbeddedRedis, EmbeddedRedis]]:
    with EmbeddedRedis(None, None, *PRIMARY) as primary, replica_of(primary.port) as replica:
        async with Redis.from_url(primary.url) as redis:
            await eventually(lambda: in_sync(redis))
        yield primary, replica


@pytest.mark.parametrize("durable", [False, True], ids=["replicas", "replicas-and-durable"])
async def test_a_submit_returns_once_the_replica_holds_it(
    pair: tuple[EmbeddedRedis, EmbeddedRedis], keyspace: Keyspace, durable: bool
) -> None:
    primary, replica = pair
    settings = ClientSettings(keyspace=keyspace, replicas=1, durable=durable)
    async with Client(primary.url, settings) as client, Redis.from_url(replica.url) as copy:
        ids = [await client.submit(SPEC), *await client.submit_many([SPEC, SPEC])]
        # WAIT counts a replica once it has processed the writes: no waiting to read them.
        for workflow_id in ids:
            status = await copy.hget(keyspace.workflow(workflow_id), WorkflowField.STATUS)
            assert status == WorkflowStatus.RUNNING.encode()


async def test_asking_for_a_replica_that_is_not_there_raises_not_replicated(
    redis_url: str, keyspace: Keyspace
) -> None:
    settings = ClientSettings(keyspace=keyspace, replicas=1, replica_timeout=0.02)
    async with Client(redis_url, settings) as client:
        with pytest.raises(NotReplicated) as raised:
            await client.submit(SPEC, "unreplicated")
        assert raised.value.acknowledged == 0 and raised.value.wanted == 1
        assert isinstance(raised.value, NotDurable)  # the same remedy: submit again, same id
        message = str(raised.value)
        assert "only 0 of 1 replica(s) acknowledged the submission within 0.02s" in message
        assert "on the primary but a failover may lose it" in message
        assert "submit again with the same id" in message
        assert (await client.get("unreplicated")).status == "running"
        with pytest.raises(NotReplicated):
            await client.submit_many([(SPEC, "unreplicated"), SPEC])


async def test_a_user_without_wait_is_refused_rather_than_told_it_replicated(
    redis: Redis, redis_url: str, keyspace: Keyspace
) -> None:
    user, password = f"nowait-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    await redis.acl_setuser(
        user, enabled=True, passwords=[f"+{password}"], keys=["*"], commands=["+@all", "-wait"]
    )
    try:
        url = redis_url.replace("redis://", f"redis://{user}:{password}@")
        async with Client(url, ClientSettings(keyspace=keyspace, replicas=1)) as client:
            with pytest.raises(NoPermissionError, match="wait"):
                await client.submit(SPEC, "refused-wait")
            assert (await client.get("refused-wait")).status == "running"
    finally:
        await redis.acl_deluser(user)


@pytest.mark.parametrize("options", [{"replicas": -1}, {"replica_timeout": 0.0}])
def test_settings_refuse_a_negative_replica_count_and_a_wait_without_a_timeout(
    options: dict[str, float],
) -> None:
    with pytest.raises(ConfigError):
        ClientSettings(**options)  # type: ignore[arg-type]
