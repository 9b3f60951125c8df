"""Fixtures for running the engine on a local Redis Cluster: three primaries, no replicas,
started once per session; each test gets a fresh namespace of six shards."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from streamproc import Client, ClientSettings, Keyspace, RedisSettings
from streamproc.registry import registered
from streamproc.testing.embedded import EmbeddedCluster
from tests.conftest import Engine

SHARDS = 6
PRIMARIES = 3


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[EmbeddedCluster]:
    if shutil.which("redis-cli") is None:
        pytest.skip("redis-cli is not on PATH: it is needed to create a Redis Cluster")
    with EmbeddedCluster(masters=PRIMARIES) as cluster:
        yield cluster


@pytest.fixture
def cluster_settings(redis_cluster: EmbeddedCluster) -> RedisSettings:
    return RedisSettings.from_url(redis_cluster.url, cluster=True)


@pytest.fixture
def cluster_keyspace() -> Keyspace:
    """A fresh namespace whose shards sit on every primary: ``--cluster create`` gives each
    of the three a third of the slots, and a random namespace's six shards miss one about a
    quarter of the time (a test that spreads work over primaries then failed at random)."""
    while True:
        keyspace = Keyspace(namespace=f"c{uuid.uuid4().hex[:10]}", shards=SHARDS)
        slots = [key_slot(keyspace.events(shard).encode()) for shard in keyspace.all_shards()]
        if len({slot * PRIMARIES // 16384 for slot in slots}) == PRIMARIES:
            return keyspace


@pytest.fixture
async def cluster_redis(redis_cluster: EmbeddedCluster) -> AsyncIterator[RedisCluster]:
    """A plain cluster client for the tests' own reads."""
    client = RedisCluster.from_url(redis_cluster.url)
    await client.initialize()  # the slot map, for get_node_from_key
    yield client
    await client.aclose()


class ClusterEngine(Engine):
    """:class:`Engine` whose resolver and workers connect to the cluster."""

    def __init__(self, settings: RedisSettings, keyspace: Keyspace) -> None:
        super().__init__(settings.url, keyspace)
        self.redis = settings


@pytest.fixture
async def cluster_engine(
    cluster_settings: RedisSettings, cluster_keyspace: Keyspace
) -> AsyncIterator[ClusterEngine]:
    """A resolver and one worker serving the agents the cluster tests use."""
    running = ClusterEngine(cluster_settings, cluster_keyspace)
    running.start_resolver()
    running.start_worker(("echo",))
    yield running
    await running.stop()


@pytest.fixture
async def cluster_resolver(
    cluster_settings: RedisSettings, cluster_keyspace: Keyspace
) -> AsyncIterator[ClusterEngine]:
    """A resolver alone: the test brings its own workers (processes to kill)."""
    running = ClusterEngine(cluster_settings, cluster_keyspace)
    running.start_resolver()
    yield running
    await running.stop()


@pytest.fixture
async def cluster_client(
    cluster_settings: RedisSettings, cluster_keyspace: Keyspace
) -> AsyncIterator[Client]:
    settings = ClientSettings(keyspace=cluster_keyspace)
    async with Client(cluster_settings, settings, agents=registered()) as client:
        yield client
