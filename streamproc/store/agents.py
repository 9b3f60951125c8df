"""The agent types each shard has routed tasks to, recorded by ``sp_submit``."""

from __future__ import annotations

from redis.asyncio import Redis

from streamproc.store.keys import Keyspace


async def shard_agents(redis: Redis, keyspace: Keyspace, shard: int) -> list[str]:
    """Agent names any workflow of ``shard`` has used (recorded at submit)."""
    members: set[bytes] = await redis.smembers(keyspace.agents(shard))  # type: ignore[assignment]
    return sorted(m.decode() for m in members)
