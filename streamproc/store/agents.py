"""The agent types each shard has routed tasks to or a worker serves, recorded by
``sp_submit`` and by a worker when it starts, and forgotten by ``sp_prune_agents`` once
nothing needs them (``lua/engine/prune.lua``)."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from streamproc.store.functions import ENGINE, Function, text
from streamproc.store.keys import Keyspace
from streamproc.store.layout import layout

PRUNE_CHUNK = 200  # agents per sp_prune_agents call: Redis serves other clients between calls


async def shard_agents(redis: Redis, keyspace: Keyspace, shard: int) -> list[str]:
    """Agent names any workflow of ``shard`` has used (recorded at submit)."""
    members: set[bytes] = await redis.smembers(keyspace.agents(shard))  # type: ignore[assignment]
    return sorted(m.decode() for m in members)


async def record_served(redis: Redis, keyspace: Keyspace, agents: list[str]) -> None:
    """Record the ``agents`` a worker starts serving, once it has joined their groups (so a
    prune in between sees its consumers): ``status`` lists them before their first task."""
    for shard in keyspace.all_shards():
        await redis.sadd(keyspace.agents(shard), *agents)


def _names(reply: list[Any]) -> list[str]:
    return [text(name) for name in reply]


PRUNE = Function("sp_prune_agents", ENGINE, _names)


async def prune_agents(redis: Redis, keyspace: Keyspace) -> dict[int, list[str]]:
    """Remove, shard by shard, the agents that no running workflow names, with no dead letter,
    no task waiting or pending and no worker serving them; return them by shard.  Every shard
    is asked about every name any shard uses, so the empty streams a worker's groups made on
    shards where the agent never ran go too."""
    names = sorted(
        {n for s in keyspace.all_shards() for n in await shard_agents(redis, keyspace, s)}
    )
    pruned: dict[int, list[str]] = {}
    for shard in keyspace.all_shards():
        for first in range(0, len(names), PRUNE_CHUNK):
            chunk = names[first : first + PRUNE_CHUNK]
            pruned.setdefault(shard, []).extend(
                await PRUNE(redis, layout(keyspace, shard, chunk, [], []))
            )
    return pruned
