"""Listing workflows on a Redis Cluster: each shard's index lives in its shard's slot, pages
merge them newest first, and expired workflows leave the index (``sp_unindex`` per slot)."""

from __future__ import annotations

from redis.asyncio.cluster import RedisCluster

from streamproc import Client, ClientSettings, Keyspace, RedisSettings
from streamproc.engine.index import prune
from streamproc.store.folded import exists
from tests.conftest import eventually

ONE = {"name": "one", "tasks": [{"id": "a", "agent": "echo", "input": 1}]}


async def test_pages_merge_every_shards_index_and_expired_workflows_leave_it(
    cluster_settings: RedisSettings, cluster_keyspace: Keyspace, cluster_redis: RedisCluster
) -> None:
    brief = ClientSettings(keyspace=cluster_keyspace, workflow_ttl=0.2)
    async with Client(cluster_settings, brief) as client:
        ids = await client.submit_many([(ONE, f"w{i}") for i in range(24)])
        assert len({cluster_keyspace.shard_of(i) for i in ids}) >= 4
        listed, cursor = [], None
        while True:
            page = await client.list(limit=5, cursor=cursor)
            listed += page.workflows
            if page.cursor is None:
                break
            cursor = page.cursor
        assert sorted(w.id for w in listed) == sorted(ids)
        order = [(w.created, w.id) for w in listed]
        assert order == sorted(order, reverse=True)

        ended = ids[:12]
        for workflow_id in ended:
            await client.cancel(workflow_id)

        async def expired() -> bool:
            return not any([await exists(cluster_redis, cluster_keyspace, i) for i in ended])

        await eventually(expired)
        assert sorted(w.id for w in (await client.list(limit=500)).workflows) == sorted(ids[12:])
        for shard in cluster_keyspace.all_shards():
            await prune(cluster_redis, cluster_keyspace, shard, 0)
        indexed = [
            member.decode()
            for shard in cluster_keyspace.all_shards()
            for member in await cluster_redis.zrange(cluster_keyspace.index(shard), 0, -1)
        ]
        assert sorted(indexed) == sorted(ids[12:])
