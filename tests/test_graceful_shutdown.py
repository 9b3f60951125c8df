"""SIGTERM-style shutdown: no new reads, running tasks finish or are handed back, no pending
entry is left behind, and a new worker finishes the rest."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

from redis.asyncio import Redis

from streamproc import Client, Keyspace
from streamproc.testing.embedded import EmbeddedRedis
from tests.conftest import Engine, eventually, worker_process
from tests.daemon import Daemon


def sleepers(n: int, seconds: float) -> dict[str, object]:
    return {
        "tasks": [
            {"id": f"s{i}", "agent": "sleep", "input": {"seconds": seconds}} for i in range(n)
        ]
    }


async def test_sigterm_lets_running_tasks_finish_and_leaves_nothing_pending(
    resolver_only: Engine,
    keyspace: Keyspace,
    client: Client,
    redis: Redis,
    worker_processes: Callable[..., Daemon],
) -> None:
    engine = resolver_only
    worker = worker_processes("sleep", "--concurrency", "4")
    workflow_id = await client.submit(sleepers(12, 0.5))
    stream = keyspace.tasks(0, "sleep")
    await eventually(lambda: _pending(redis, stream, at_least=1))
    worker.signal(signal.SIGTERM)
    assert await worker.wait(15) == 0
    assert (await redis.xpending(stream, "sleep"))["pending"] == 0
    assert await redis.xinfo_consumers(stream, "sleep") == []
    state = await client.get(workflow_id)
    assert state.status == "running"
    assert all(t.attempt == 1 for t in state.tasks)  # finished, not handed back
    engine.start_worker(("sleep",))
    assert (await client.wait(workflow_id, timeout=30)).status == "completed"


async def test_tasks_outliving_the_grace_period_are_handed_back_at_once(
    resolver_only: Engine, keyspace: Keyspace, client: Client, redis: Redis
) -> None:
    engine = resolver_only
    engine.start_worker(("sleep",), shutdown_grace=0.2, concurrency=2)
    workflow_id = await client.submit(sleepers(2, 5.0))
    stream = keyspace.tasks(0, "sleep")
    await eventually(lambda: _pending(redis, stream, at_least=2))
    await engine.stop()
    assert (await redis.xpending(stream, "sleep"))["pending"] == 0
    state = await client.get(workflow_id)
    assert [(t.state, t.attempt, t.lost) for t in state.tasks] == [("queued", 2, 0)] * 2
    events = await redis.xrange(keyspace.events(0))
    reasons = [f.get(b"reason") for _, f in events if f[b"kind"] == b"task_requeued"]
    assert reasons == [b"handed back", b"handed back"]


async def _pending(redis: Redis, stream: str, at_least: int) -> bool:
    try:
        return (await redis.xpending(stream, "sleep"))["pending"] >= at_least
    except Exception:  # the group does not exist until the worker starts
        await asyncio.sleep(0)
        return False


async def test_sigterm_while_redis_is_down_exits_within_the_shutdown_timeout(
    keyspace: Keyspace,
) -> None:
    with EmbeddedRedis() as server:
        worker = worker_process(server.url, keyspace, "sleep", "--shutdown-timeout", "2")
        try:
            probe = Redis.from_url(server.url)
            stream = keyspace.tasks(0, "sleep")
            await eventually(lambda: _has_consumer(probe, stream))
            await probe.aclose()
            server.kill()
            worker.signal(signal.SIGTERM)
            assert await worker.wait(20) == 1
            log = await asyncio.to_thread(Path(worker.log.name).read_text)
            assert "stopping now; unfinished work stays pending for reclaim" in log
        finally:
            worker.kill()


async def _has_consumer(redis: Redis, stream: str) -> bool:
    try:
        return bool(await redis.xinfo_groups(stream))
    except Exception:  # no stream yet
        return False
