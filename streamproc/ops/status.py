"""Per-agent figures for ``streamproc status``: backlog, pending, consumers, dead letters, and
tasks awaiting a signal (counted by the engine functions in each shard's usage hash)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from streamproc.autoscale.fleet import desired_counts
from streamproc.store.agents import shard_agents
from streamproc.store.fields import UsageField
from streamproc.store.keys import Keyspace


@dataclass(frozen=True)
class AgentStats:
    """One agent type summed over shards.  ``lag`` is entries not yet read by its group (on
    a shard where it has no group yet, the whole stream: nobody has read any of it)."""

    agent: str
    length: int
    lag: int
    pending: int
    consumers: int
    dead_letters: int
    awaiting: int  # its tasks awaiting a signal
    desired: int | None = None  # the autoscaler's fleet-wide count; None when it is off

    @property
    def unserved(self) -> bool:
        """Tasks wait and no consumer is there to run them: nothing will, until one is."""
        return self.consumers == 0 and self.lag + self.pending > 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "unserved": self.unserved}


async def known_agents(redis: Redis, keyspace: Keyspace) -> list[str]:
    names: set[str] = set()
    for shard in keyspace.all_shards():
        names.update(await shard_agents(redis, keyspace, shard))
    return sorted(names)


async def agent_stats(redis: Redis, keyspace: Keyspace, agents: list[str]) -> list[AgentStats]:
    out = []
    desired = await desired_counts(redis, keyspace, agents)
    for agent in agents:
        totals = dict(length=0, lag=0, pending=0, consumers=0, dead_letters=0, awaiting=0)
        for shard in keyspace.all_shards():
            stream = keyspace.tasks(shard, agent)
            pipe = redis.pipeline(transaction=False)
            pipe.xlen(stream)
            pipe.xlen(keyspace.dead(shard, agent))
            pipe.hget(keyspace.usage(shard), UsageField.AWAITING + agent)
            length, dead, awaiting = await pipe.execute()
            totals["length"] += length
            totals["dead_letters"] += dead
            totals["awaiting"] += int(awaiting or 0)
            try:
                groups = await redis.xinfo_groups(stream)
            except ResponseError:
                continue  # no stream yet
            own = [g for g in groups if g["name"] == agent.encode()]
            for group in own:
                totals["lag"] += group.get("lag") or 0
                totals["pending"] += group["pending"]
                totals["consumers"] += group["consumers"]
            if not own:
                totals["lag"] += length
        out.append(AgentStats(agent, **totals, desired=desired.get(agent)))
    return out


async def declared_waits(redis: Redis, keyspace: Keyspace) -> int:
    """Tasks declared as waits (they have no agent) now awaiting a signal, over all shards."""
    pipe = redis.pipeline(transaction=False)
    for shard in keyspace.all_shards():
        pipe.hget(keyspace.usage(shard), UsageField.AWAITING.value)
    return sum(int(count or 0) for count in await pipe.execute())
