"""Row A4: the HTTP API dies after it created a workflow but before it replied.

The client never learns whether its submit took, so it retries with the same
``Idempotency-Key``.  The key names the workflow and ``sp_submit`` creates it only if it is
not there yet, so the retry finds it: one workflow, run once, however many retries."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import pytest
from redis.asyncio import Redis

from streamproc import Client, Keyspace
from streamproc.testing.embedded import free_port
from tests.cli_runner import submitted_count, workflow_keys
from tests.conftest import Engine, eventually
from tests.daemon import Daemon
from tests.faults import oracle
from tests.faults.workload import daemon, ledger_chain
from tests.http_helpers import healthy

KEY = "a4-order-1"


def api(redis_url: str, keyspace: Keyspace, port: int, failpoint: str = "") -> Daemon:
    """``streamproc api`` on ``port``, without tokens (loopback only)."""
    return daemon(redis_url, keyspace.namespace, "api", "--port", str(port), failpoint=failpoint)


async def test_a4_api_killed_before_replying_then_a_retry_with_the_same_key_runs_one_workflow(
    resolver_only: Engine, redis_url: str, keyspace: Keyspace, client: Client, redis: Redis
) -> None:
    resolver_only.start_worker(("ledger",))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    spec, headers = ledger_chain(3, 0.01), {"Idempotency-Key": KEY}
    doomed = api(redis_url, keyspace, port, "api.after_submit_before_response")
    restarted = None
    try:
        async with aiohttp.ClientSession() as session:
            await eventually(lambda: healthy(session, base))
            with pytest.raises(aiohttp.ClientConnectionError):
                await session.post(f"{base}/workflows", json=spec, headers=headers)
            assert await asyncio.to_thread(doomed.process.wait, 10) == -signal.SIGKILL
            assert await workflow_keys(redis, keyspace) == [keyspace.workflow(KEY).encode()]

            restarted = api(redis_url, keyspace, port)
            await eventually(lambda: healthy(session, base))
            async with session.post(f"{base}/workflows", json=spec, headers=headers) as reply:
                assert (reply.status, await reply.json()) == (200, {"id": KEY}), "not created"
        verdict = await oracle.check(client, redis, [KEY])
    finally:
        doomed.kill()
        if restarted is not None:
            restarted.kill()
    verdict.assert_invariants()
    assert verdict.statuses == {"completed": 1}
    assert verdict.dup_exec == 0, "each task ran once"
    assert await workflow_keys(redis, keyspace) == [keyspace.workflow(KEY).encode()]
    assert await submitted_count(redis, keyspace, KEY) == 1
