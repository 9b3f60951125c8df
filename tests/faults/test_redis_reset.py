"""Row B4: Redis restarted without persistence comes back empty.

The daemons notice (their shard epochs are gone), stop consuming and exit with the reason
rather than re-create their groups and carry on; the HTTP API answers 503 with it.  Nothing
reports a workflow of the lost epoch as completed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from streamproc import Client, ClientSettings, Keyspace
from streamproc.errors import WorkflowNotFound
from streamproc.http.app import serve
from streamproc.http.auth import ApiSettings
from streamproc.testing.embedded import EmbeddedRedis, free_port
from tests.conftest import eventually, some_task
from tests.faults.workload import all_ready, ledger_chain, resolver, worker

NO_PERSISTENCE = ("--appendonly", "no", "--save", "")


@pytest.fixture
def volatile_redis() -> Iterator[EmbeddedRedis]:
    """A redis-server that keeps nothing on disk."""
    with EmbeddedRedis(None, None, *NO_PERSISTENCE) as server:
        yield server


async def test_b4_redis_back_empty_stops_the_daemons_and_the_api_answers_503(
    volatile_redis: EmbeddedRedis, keyspace: Keyspace
) -> None:
    url, namespace = volatile_redis.url, keyspace.namespace
    daemons = [resolver(url, namespace), worker(url, namespace, "ledger")]
    port, stop = free_port(), asyncio.Event()
    try:
        async with Client(url, ClientSettings(keyspace=keyspace)) as client:
            api = asyncio.create_task(serve(client, ApiSettings(port=port), stop))
            ids = await client.submit_many([ledger_chain(3, 0.5) for _ in range(5)])
            await eventually(lambda: all_ready(daemons))  # both found the first epoch
            await eventually(lambda: some_task(client, ids, "running"))

            volatile_redis.kill()
            empty = EmbeddedRedis(volatile_redis.port, None, *NO_PERSISTENCE)
            empty.start()
            restarted = time.monotonic()
            try:
                codes = await asyncio.gather(*(d.wait() for d in daemons))
                detection = time.monotonic() - restarted
                assert codes == [2, 2], [d.log_text()[-2000:] for d in daemons]
                for daemon in daemons:
                    assert "error: Redis lost namespace" in daemon.log_text()
                    assert "refusing to start afresh in silence" in daemon.log_text()
                assert detection < 15

                base = f"http://127.0.0.1:{port}"
                async with aiohttp.ClientSession() as http:
                    # The API checks once a second; until then a read finds nothing (404).
                    await eventually(lambda: _status(http, "GET", f"{base}/workflows/{ids[0]}"))
                    for method, path in [("GET", f"/workflows/{ids[0]}"), ("POST", "/workflows")]:
                        status, body = await _status(http, method, base + path)
                        assert status == 503
                        assert "Redis lost namespace" in body["error"]
                    async with http.get(base + "/healthz") as reply:
                        assert reply.status == 200  # alive, and saying why it refuses

                # Nothing claims the lost workflows finished; nothing re-created the groups.
                for workflow_id in ids:
                    with pytest.raises(WorkflowNotFound):
                        await client.get(workflow_id)
                assert not await client.redis.exists(keyspace.tasks(0, "ledger"))
            finally:
                stop.set()
                await api
                empty.cleanup()
    finally:
        for daemon in daemons:
            daemon.kill()


async def _status(
    http: aiohttp.ClientSession, method: str, url: str
) -> tuple[int, dict[str, Any]] | None:
    """The status and body of a request, once it is a 503 (None before)."""
    async with http.request(method, url, json={"tasks": []}) as reply:
        return (reply.status, await reply.json()) if reply.status == 503 else None
