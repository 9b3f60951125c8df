"""Row B5: durable submits across Redis versions.  Redis 7.2+ confirms each submission's
fsync (WAITAOF); on 7.0 (this machine's) the client relies on ``appendfsync always`` and warns
when it is not set; a WAITAOF the server does not know is handled, not fatal."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from streamproc import Client, ClientSettings, Keyspace
from streamproc.testing.embedded import EmbeddedRedis
from streamproc.transport.durability import Fsync, version_of

SPEC = {"tasks": [{"id": "a", "agent": "echo"}]}


@pytest.fixture
async def durable(redis_url: str, keyspace: Keyspace) -> AsyncIterator[Client]:
    async with Client(redis_url, ClientSettings(keyspace=keyspace, durable=True)) as client:
        yield client


async def _version(client: Client) -> tuple[int, ...]:
    return version_of(await client.redis.info("server"))


async def test_b5_on_redis_7_0_with_everysec_durable_submits_warn_once(
    durable: Client, caplog: pytest.LogCaptureFixture
) -> None:
    if await _version(durable) >= (7, 2):
        pytest.skip("this Redis has WAITAOF: see the 7.2 test")
    first = await durable.submit(SPEC)
    second = await durable.submit_many([SPEC, SPEC])
    warnings = [r.message for r in caplog.records if "no WAITAOF" in r.message]
    assert len(warnings) == 1 and "appendfsync everysec" in warnings[0]
    assert durable._submits.fsync is Fsync.NONE
    for workflow_id in [first, *second]:
        assert (await durable.get(workflow_id)).status == "running"


async def test_b5_on_redis_7_0_appendfsync_always_is_durable_without_a_warning(
    keyspace: Keyspace, caplog: pytest.LogCaptureFixture
) -> None:
    with EmbeddedRedis(None, None, "--appendfsync", "always") as server:
        settings = ClientSettings(keyspace=keyspace, durable=True)
        async with Client(server.url, settings) as client:
            if await _version(client) >= (7, 2):
                pytest.skip("this Redis has WAITAOF: see the 7.2 test")
            workflow_id = await client.submit(SPEC)
            assert client._submits.fsync is Fsync.ALWAYS
            assert (await client.get(workflow_id)).status == "running"
    assert not [r for r in caplog.records if "WAITAOF" in r.message]


async def test_b5_on_redis_7_2_each_submission_waits_for_its_fsync(durable: Client) -> None:
    if await _version(durable) < (7, 2):
        pytest.skip("WAITAOF needs Redis 7.2 or later; this one is older")
    workflow_id = await durable.submit(SPEC)
    assert durable._submits.fsync is Fsync.WAITAOF
    assert (await durable.get(workflow_id)).status == "running"


async def test_b5_a_waitaof_the_server_does_not_know_falls_back_with_a_warning(
    durable: Client, caplog: pytest.LogCaptureFixture
) -> None:
    if await _version(durable) >= (7, 2):
        pytest.skip("this Redis knows WAITAOF")
    durable._submits.fsync = Fsync.WAITAOF  # as if it claimed 7.2 without the command
    workflow_id = await durable.submit(SPEC)
    assert (await durable.get(workflow_id)).status == "running"
    assert any("WAITAOF refused" in r.message for r in caplog.records)
    assert durable._submits.fsync is Fsync.NONE
