"""The engine runs unchanged on a Redis Cluster: workflows of every shape complete, a killed
worker loses nothing, and the CLI reads the whole cluster."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import cast

import orjson
import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from streamproc import (
    Client,
    ClientSettings,
    Keyspace,
    RedisSettings,
    Task,
    TaskSpec,
    WorkflowSpec,
    agent,
)
from streamproc.errors import LimitReached
from streamproc.ops import events as lifecycle
from streamproc.ops.status import known_agents
from streamproc.store.agents import prune_agents
from streamproc.store.codec import Entry
from streamproc.store.tenants import Quota, usage
from streamproc.testing.embedded import EmbeddedCluster, EmbeddedRedis
from tests.cluster.conftest import SHARDS, ClusterEngine
from tests.conftest import eventually, worker_process
from tests.daemon import Daemon

STREAMPROC = Path(sys.executable).parent / "streamproc"


def chain(n: int, agent: str = "echo", seconds: float = 0.0) -> WorkflowSpec:
    return WorkflowSpec(
        tasks=tuple(
            TaskSpec(
                id=f"t{i}",
                agent=agent,
                input={"seconds": seconds} if agent == "ledger" else i,
                needs=(f"t{i - 1}",) if i else (),
            )
            for i in range(n)
        )
    )


def primaries_of(redis: RedisCluster, keyspace: Keyspace, shards: Iterable[int]) -> set[str]:
    """The primaries holding the given shards' keys."""
    nodes = [redis.get_node_from_key(keyspace.events(shard)) for shard in shards]
    return {node.name for node in nodes if node is not None}


async def all_events(redis: RedisCluster, keyspace: Keyspace) -> list[dict[bytes, bytes]]:
    """Every shard's lifecycle events (each shard's stream lives on its own slot)."""
    events: list[dict[bytes, bytes]] = []
    for shard in keyspace.all_shards():
        entries = cast(list[Entry], await redis.xrange(keyspace.events(shard)))
        events += (fields for _, fields in entries)
    return events


async def test_six_shards_spread_over_more_than_one_primary(
    cluster_redis: RedisCluster, cluster_keyspace: Keyspace
) -> None:
    assert cluster_keyspace.shards == SHARDS
    used = primaries_of(cluster_redis, cluster_keyspace, cluster_keyspace.all_shards())
    assert len(used) >= 2, used


async def test_chain_passes_each_result_to_the_next_on_the_cluster(
    cluster_engine: ClusterEngine, cluster_client: Client
) -> None:
    workflow_id = await cluster_client.submit(chain(4))
    state = await cluster_client.wait(workflow_id, timeout=20)
    assert state.status == "completed"
    assert state.results["t3"]["deps"]["t2"]["deps"]["t1"] == {"input": 1, "deps": {"t0": 0}}
    kinds = [event["kind"] for event in await cluster_client.history(workflow_id)]
    assert kinds[0] == "submitted" and kinds[-1] == "completed"
    assert kinds.count("task_done") == 4


async def test_fan_out_of_two_hundred_then_fan_in_on_the_cluster(
    cluster_engine: ClusterEngine, cluster_client: Client
) -> None:
    leaves = [
        {"id": f"leaf{i}", "agent": "echo", "input": i, "needs": ["root"]} for i in range(200)
    ]
    join = {"id": "join", "agent": "echo", "input": "sum", "needs": [x["id"] for x in leaves]}
    spec = {"tasks": [{"id": "root", "agent": "echo", "input": "go"}, *leaves, join]}
    state = await cluster_client.wait(await cluster_client.submit(spec), timeout=30)
    assert state.status == "completed"
    joined = state.results["join"]["deps"]
    assert len(joined) == 200
    assert joined["leaf199"] == {"input": 199, "deps": {"root": "go"}}


async def test_submit_many_across_shards_on_several_primaries_all_complete(
    cluster_engine: ClusterEngine,
    cluster_client: Client,
    cluster_redis: RedisCluster,
    cluster_keyspace: Keyspace,
) -> None:
    ids = await cluster_client.submit_many([chain(3) for _ in range(60)])
    assert len(set(ids)) == 60
    shards = {cluster_keyspace.shard_of(workflow_id) for workflow_id in ids}
    assert len(primaries_of(cluster_redis, cluster_keyspace, shards)) >= 2, shards
    states = await asyncio.gather(*(cluster_client.wait(wf, timeout=30) for wf in ids))
    assert {state.status for state in states} == {"completed"}
    completed = Counter(
        f[b"wf"].decode()
        for f in await all_events(cluster_redis, cluster_keyspace)
        if f[b"kind"] == b"completed"
    )
    assert completed == Counter(ids)


async def test_events_tail_reads_every_shard_of_the_cluster(
    cluster_engine: ClusterEngine, cluster_client: Client, cluster_keyspace: Keyspace
) -> None:
    ids = await cluster_client.submit_many([chain(2) for _ in range(12)])
    for workflow_id in ids:
        await cluster_client.wait(workflow_id, timeout=20)
    seen: set[str] = set()
    tail = lifecycle.tail(cluster_client.redis, cluster_keyspace, "0")
    async with asyncio.timeout(10):
        async for event in tail:
            if event.kind == "completed":
                seen.add(event.workflow)
            if seen == set(ids):
                break
    assert len({cluster_keyspace.shard_of(wf) for wf in ids}) >= 2


@pytest.fixture
def ledger_url(redis_server: EmbeddedRedis) -> str:
    """The test agents' ledger stays on the standalone server, outside the engine's keys."""
    return redis_server.url


async def test_worker_killed_mid_task_on_the_cluster_loses_nothing_and_applies_each_task_once(
    cluster_resolver: ClusterEngine,
    cluster_client: Client,
    cluster_redis: RedisCluster,
    cluster_keyspace: Keyspace,
    redis_cluster: EmbeddedCluster,
    ledger_url: str,
) -> None:
    def worker() -> Daemon:
        return worker_process(
            redis_cluster.url,
            cluster_keyspace,
            "ledger",
            "--cluster",
            "--shards",
            str(SHARDS),
            "--concurrency",
            "8",
            ledger_url=ledger_url,
        )

    first = worker()
    try:
        ids = await cluster_client.submit_many([chain(3, "ledger", 0.3) for _ in range(20)])
        async with Redis.from_url(ledger_url) as record:
            await eventually(lambda: record.exists(*(f"ledger:{wf}" for wf in ids)))
        first.signal(signal.SIGKILL)
        await first.wait()
        second = worker()
        try:
            states = await asyncio.gather(*(cluster_client.wait(wf, timeout=60) for wf in ids))
        finally:
            second.kill()
    finally:
        first.kill()
    assert {state.status for state in states} == {"completed"}
    done = Counter(
        (f[b"wf"], f[b"task"])
        for f in await all_events(cluster_redis, cluster_keyspace)
        if f[b"kind"] == b"task_done"
    )
    assert len(done) == 60 and set(done.values()) == {1}
    requeued = [t for state in states for t in state.tasks if t.lost]
    assert requeued, "the killed worker held tasks that had to be reclaimed"
    assert all(t.attempt == t.lost + 1 for t in requeued)


async def test_status_with_cluster_option_sums_every_shard(
    cluster_engine: ClusterEngine,
    cluster_client: Client,
    cluster_keyspace: Keyspace,
    redis_cluster: EmbeddedCluster,
) -> None:
    ids = await cluster_client.submit_many([chain(2) for _ in range(12)])
    for workflow_id in ids:
        await cluster_client.wait(workflow_id, timeout=20)
    proc = await asyncio.create_subprocess_exec(
        str(STREAMPROC),
        "status",
        "--json",
        "--cluster",
        "--redis-url",
        redis_cluster.url,
        "--namespace",
        cluster_keyspace.namespace,
        "--shards",
        str(SHARDS),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    rows = {row["agent"]: row for row in map(orjson.loads, out.decode().splitlines())}
    echo = rows["echo"]
    assert echo["lag"] == 0 and echo["pending"] == 0 and echo["dead_letters"] == 0, echo
    # Redis creates a group's consumer at its first delivery: one on each shard that had work,
    # and on others only if a read failed there (the re-read of its own pending entries,
    # from id 0, also creates it).
    used = {cluster_keyspace.shard_of(workflow_id) for workflow_id in ids}
    assert 2 <= len(used) <= echo["consumers"] <= SHARDS, echo


async def test_tenant_limits_and_agent_clean_up_work_across_slots(
    cluster_engine: ClusterEngine, cluster_settings: RedisSettings, cluster_keyspace: Keyspace
) -> None:
    """A tenant's usage is summed over every shard's slot, and its limit holds; an ended
    workflow's agent is forgotten on every shard."""
    quota = Quota("acme", max_workflows=3)
    settings = ClientSettings(keyspace=cluster_keyspace)
    async with Client(cluster_settings, settings) as client:
        gated = {
            "tasks": [
                {"id": "a", "agent": "nobody-serves"},
                {"id": "b", "agent": "kestrel", "needs": ["a"]},
            ]
        }
        for number in range(3):
            await client.create(gated, f"acme.w{number}", quota)
        with pytest.raises(LimitReached, match="tenant acme has 3 workflows in flight"):
            await client.create(gated, "acme.w3", quota)
        shards = list(cluster_keyspace.all_shards())
        assert (await usage(client.redis, cluster_keyspace, "acme", shards)).workflows == 3
        for number in range(3):
            await client.cancel(f"acme.w{number}")
        await client.create(gated, "acme.w3", quota)
        done = await client.submit({"tasks": [{"id": "a", "agent": "echo", "input": 1}]})
        await client.wait(done, timeout=20)
        await prune_agents(client.redis, cluster_keyspace)
        assert {"echo", "kestrel"} <= set(await known_agents(client.redis, cluster_keyspace))
        await client.cancel("acme.w3")
        await prune_agents(client.redis, cluster_keyspace)
        known = set(await known_agents(client.redis, cluster_keyspace))
        assert "kestrel" not in known  # no running workflow names it any more
        assert {"echo", "nobody-serves"} <= known  # a worker serves it; unread tasks


@agent("cluster_talker")
async def cluster_talker(task: Task) -> str:
    for n in range(3):
        await task.emit({"n": n})
    return "said"


async def test_output_streams_work_on_the_cluster(
    cluster_resolver: ClusterEngine,
    cluster_client: Client,
    cluster_redis: RedisCluster,
    cluster_keyspace: Keyspace,
) -> None:
    """Each workflow's output stream is in its shard's slot: the worker writes chunks of
    workflows on several primaries in one pipeline, and followers read them with the history."""
    cluster_resolver.start_worker(("cluster_talker",))
    spec = {"tasks": [{"id": "say", "agent": "cluster_talker"}]}
    ids = await cluster_client.submit_many([spec for _ in range(12)])
    shards = {cluster_keyspace.shard_of(workflow_id) for workflow_id in ids}
    assert len(primaries_of(cluster_redis, cluster_keyspace, shards)) >= 2, shards
    for workflow_id in ids:
        assert (await cluster_client.wait(workflow_id, timeout=20)).status == "completed"
        events = [e async for e in cluster_client.follow(workflow_id, start="0")]
        chunks = [e["chunk"] for e in events if e["kind"] == "output"]
        assert chunks == [{"n": 0}, {"n": 1}, {"n": 2}] and events[-1]["kind"] == "completed"
        assert await cluster_redis.pttl(cluster_keyspace.output(workflow_id)) > 0


async def test_a_worker_of_several_agents_reads_every_shard_without_reconnecting(
    cluster_settings: RedisSettings,
    cluster_keyspace: Keyspace,
    cluster_client: Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its blocked reads shared one Cluster client, which answered any read's lost connection
    by closing them all: every read failed, reconnected and failed the others again, for as
    long as the worker ran, with a warning each (dozens while these workflows ran)."""
    running = ClusterEngine(cluster_settings, cluster_keyspace)
    running.start_resolver()
    running.start_worker(("echo", "sleep", "flaky", "ledger"))
    try:
        ids = [await cluster_client.submit(chain(3)) for _ in range(6)]
        for workflow_id in ids:
            assert (await cluster_client.wait(workflow_id, timeout=20)).status == "completed"
    finally:
        await running.stop()
    outages = [r.getMessage() for r in caplog.records if "redis unavailable" in r.getMessage()]
    assert outages == []
