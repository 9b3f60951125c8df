"""The Cluster client routes the engine's commands by slot without asking the server for
their keys, and its node connections are the lean ones."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from streamproc import Client
from streamproc.testing.embedded import EmbeddedCluster
from streamproc.transport.cluster import command_keys
from streamproc.transport.connection import LeanConnection
from tests.cluster.conftest import ClusterEngine


def test_stream_and_function_keys_are_read_off_the_arguments() -> None:
    read = ("GROUP", "streams", "STREAMS", "COUNT", 5, "BLOCK", 100, "NOACK")
    assert command_keys("XREADGROUP", (*read, "STREAMS", "{a:0}:x", ">")) == ["{a:0}:x"]
    assert command_keys("XREAD", ("COUNT", 1, "STREAMS", "k1", "k2", "0", "0")) == ["k1", "k2"]
    assert command_keys("FCALL", ("sp_submit", 2, "{a:1}:k", "{a:1}:j", "x")) == [
        "{a:1}:k",
        "{a:1}:j",
    ]
    assert command_keys("XREAD", ("BOGUS", "STREAMS", "k", "0")) is None
    assert command_keys("GET", ("k",)) is None


async def getkeys_calls(cluster: EmbeddedCluster) -> int:
    total = 0
    for node in cluster.nodes:
        async with Redis(port=node.port) as redis:
            stats = await redis.info("commandstats")
        total += stats.get("cmdstat_command|getkeys", {}).get("calls", 0)
    return total


async def test_engine_calls_and_reads_need_no_command_getkeys_round_trip(
    cluster_engine: ClusterEngine, cluster_client: Client, redis_cluster: EmbeddedCluster
) -> None:
    before = await getkeys_calls(redis_cluster)
    spec = {"tasks": [{"id": "a", "agent": "echo"}, {"id": "b", "agent": "echo", "needs": ["a"]}]}
    ids = await cluster_client.submit_many([spec for _ in range(12)])
    await asyncio.gather(*(cluster_client.wait(workflow_id, timeout=20) for workflow_id in ids))
    assert await getkeys_calls(redis_cluster) == before
    nodes = cluster_client.redis.get_nodes()  # type: ignore[attr-defined]
    connections = [conn for node in nodes for conn in node._connections]
    assert connections and all(isinstance(conn, LeanConnection) for conn in connections)
