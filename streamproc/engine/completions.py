"""Applying completions with ``sp_resolve``, for the resolver (completions it read from
``done``) and for a worker (its own, applied as it reports them; ``outbox.py``).

A call needs the keys of every agent stream it may publish to, and the ready tasks of a
completion may belong to any agent of the shard.  So each shard's call names the agents its
workflows were submitted for (recorded at submit); one it lacks the keys for stops the call
before that completion, and the name is learned and the rest applied by the next call.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence

from redis.asyncio import Redis

from streamproc import metrics
from streamproc.engine.stower import Stower
from streamproc.store import calls
from streamproc.store.agents import shard_agents
from streamproc.store.codec import Acks, Completion
from streamproc.store.functions import Arg
from streamproc.store.ids import ID_PATTERN
from streamproc.store.keys import Keyspace

log = logging.getLogger(__name__)


class Completions:
    """Applies completions to one keyspace, with a failed task's retry backoff between
    ``retry_base`` and ``retry_cap`` seconds (jittered per call)."""

    def __init__(
        self, redis: Redis, keyspace: Keyspace, retry_base: float, retry_cap: float
    ) -> None:
        self.redis = redis
        self.keyspace = keyspace
        self._retry = (int(retry_base * 1000), int(retry_cap * 1000))
        self._agents: dict[int, list[str]] = {}
        self.stower = Stower(redis, keyspace)  # stows the workflows the calls ended

    async def agents(self, shard: int) -> list[str]:
        """The agents ``shard`` routes to, as far as known here (read once, then learned)."""
        if shard not in self._agents:
            self._agents[shard] = await shard_agents(self.redis, self.keyspace, shard)
        return self._agents[shard]

    def refresh(self, shard: int) -> None:
        """Read ``shard``'s agents again when next needed (Redis may have restarted)."""
        self._agents.pop(shard, None)

    def forget(self, shard: int, pruned: Sequence[str]) -> None:
        """Agents ``sp_prune_agents`` removed: calls stop naming them."""
        self._agents[shard] = [a for a in self._agents.get(shard, []) if a not in pruned]

    def learn(self, shard: int, agent: str) -> None:
        """A call stopped at ``agent``: the next ones name it.  A name that cannot be an
        agent's, or one named already, means a call can never get past it."""
        known = self._agents.setdefault(shard, [])
        if not ID_PATTERN.fullmatch(agent) or agent in known:
            raise RuntimeError(f"cannot route tasks of agent {agent!r}")
        known.append(agent)

    async def arguments(self, shard: int, batch: Sequence[Completion], acks: Acks) -> list[Arg]:
        """One call's arguments for ``batch`` (all of ``shard``)."""
        agents = await self.agents(shard)
        if acks is Acks.TASKS:  # each task entry's stream is acknowledged
            own = {c.agent.decode() for c in batch} - set(agents)
            agents = agents + sorted(own)
        jitter = 0.5 + random.random() / 2
        retry = calls.Retry(*self._retry, jitter)
        return calls.resolve_arguments(self.keyspace, shard, agents, retry, batch, acks)

    async def apply(self, shard: int, batch: Sequence[Completion], acks: Acks) -> None:
        """Apply ``batch`` whole, as many calls as it takes to learn the agents it needs."""
        while batch:
            began = time.perf_counter()
            args = await self.arguments(shard, batch, acks)
            resolved = await calls.RESOLVE(self.redis, args)
            self.record(shard, resolved, time.perf_counter() - began)
            batch = batch[resolved.consumed :]
            if resolved.missing:
                self.learn(shard, resolved.missing)

    def record(self, shard: int, resolved: calls.Resolved, seconds: float) -> None:
        """A call's outcome: its metrics, and the workflows it ended go to the stower."""
        self.stower.add(shard, resolved.ended)
        metrics.batch_applied(
            seconds, resolved.consumed, resolved.stale, resolved.completed, resolved.failed
        )
        if resolved.stale:
            log.info("ignored %d duplicate or superseded completions", resolved.stale)
