"""Autoscaling across worker processes, coordinated with plain Redis commands.

Every ``interval`` each worker process, for each agent it serves (key names in ``keys.py``):

1. heartbeats: ``ZADD scale:<agent>:members <Redis time, ms> <process>`` and, once it has run
   a task, ``HSET scale:<agent>:latency <process> <moving average, s>``;
2. takes or renews the agent's lease (``lease.py``).  Its holder alone drops members silent
   for three intervals, measures the load (``XINFO STREAM`` entries-added, ``XINFO GROUPS``
   lag + pending, over shards) and writes the count :class:`~streamproc.autoscale.policy.Scaler`
   decides to ``scale:<agent>:desired`` (expiring with a silent member, so it goes once no
   process autoscales the agent);
3. takes its share of the desired count, ``ceil(desired / live processes)`` capped by its own
   concurrency: rounding up makes the shares sum to at least the desired count.

Heartbeats use the Redis clock, so skew between hosts cannot make a live process look stale.
The holder keeps its decision state (the last entries-added reading, the cool-down window) in
memory: a new holder opens a fresh window, so a change of holder can delay a scale-down, never
hasten one.  Until a desired count exists a process uses all its slots, as without autoscaling.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from statistics import fmean

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from streamproc.autoscale.policy import ArrivalRate, Load, Scaler, share
from streamproc.config import AutoscaleSettings, WorkerSettings
from streamproc.store.keys import Keyspace
from streamproc.transport import lease

log = logging.getLogger(__name__)
LATENCY_WEIGHT = 0.2  # of the newest duration in the moving average


class Autoscaler:
    """One worker process's side of autoscaling: its slot budget per agent (see above)."""

    def __init__(
        self, redis: Redis, worker: WorkerSettings, settings: AutoscaleSettings, process: str
    ) -> None:
        self.redis, self.keyspace, self.process = redis, worker.keyspace, process
        self.settings, self.concurrency = settings, worker.concurrency
        agents, concurrency = worker.agents, worker.concurrency
        self._expiry_ms = int(3 * settings.interval * 1000)
        self._scalers = {agent: Scaler(settings, concurrency) for agent in agents}
        self._rates = {agent: ArrivalRate() for agent in agents}
        self._latency: dict[str, float] = {}
        self._busy: Counter[str] = Counter()
        self.desired: dict[str, int | None] = dict.fromkeys(agents)
        self.live = dict.fromkeys(agents, 1)
        self.budget = dict.fromkeys(agents, concurrency)

    def room(self, agent: str, free: int) -> int:
        """How many entries ``agent``'s readers may take now.  A budget cut below the running
        count leaves none, so the extra slots retire as their tasks finish: none is cancelled."""
        return min(free, self.budget[agent] - self._busy[agent])

    def started(self, agent: str) -> None:
        self._busy[agent] += 1

    def finished(self, agent: str) -> None:
        self._busy[agent] -= 1

    def observe(self, agent: str, seconds: float) -> None:
        """Fold one task's duration into the agent's exponential moving average."""
        old = self._latency.get(agent)
        self._latency[agent] = seconds if old is None else old + LATENCY_WEIGHT * (seconds - old)

    async def tick(self) -> None:
        seconds, micros = await self.redis.time()
        now_ms = seconds * 1000 + micros // 1000
        for agent in self._scalers:
            await self._tick_agent(agent, now_ms)

    async def _tick_agent(self, agent: str, now_ms: int) -> None:
        members = self.keyspace.scale_members(agent)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(members, {self.process: now_ms})
        pipe.zcount(members, f"({now_ms - self._expiry_ms}", "+inf")
        pipe.get(self.keyspace.scale_desired(agent))
        if agent in self._latency:
            pipe.hset(self.keyspace.scale_latency(agent), self.process, repr(self._latency[agent]))
        _, live, raw, *_ = await pipe.execute()
        desired = None if raw is None else int(raw)
        key = self.keyspace.scale_lease(agent)
        if await lease.hold(self.redis, key, self.process, self._expiry_ms):
            desired = await self._publish(agent, now_ms, desired)
        self.desired[agent], self.live[agent] = desired, max(live, 1)
        if desired is None:
            self.budget[agent] = self.concurrency
        else:
            self.budget[agent] = share(desired, live, self.concurrency)

    async def _publish(self, agent: str, now_ms: int, current: int | None) -> int:
        """As the lease holder: forget silent members, decide and write the desired count."""
        members, latency = self.keyspace.scale_members(agent), self.keyspace.scale_latency(agent)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zremrangebyscore(members, "-inf", now_ms - self._expiry_ms)
        pipe.zrange(members, 0, -1)
        pipe.hgetall(latency)
        _, names, reports = await pipe.execute()
        live = set(names)
        gone = [name for name in reports if name not in live]
        if gone:
            await self.redis.hdel(latency, *gone)
        averages = [float(value) for name, value in reports.items() if name in live]
        backlog, added = await measure(self.redis, self.keyspace, agent)
        now = now_ms / 1000
        rate = self._rates[agent].update(now, added)
        load = Load(backlog, rate, fmean(averages) if averages else None)
        count = self._scalers[agent].decide(now, load, current)
        # Written every tick, expiring as a silent member does: once no process autoscales
        # the agent, no count is left behind for status or an outside scaler to act on.
        await self.redis.set(self.keyspace.scale_desired(agent), count, px=self._expiry_ms)
        if count != current:
            log.info("desired consumers of %s: %s -> %d (%s)", agent, current, count, load)
        return count

    async def leave(self) -> None:
        """Drop out of each agent's members and lease, so that the other processes' shares
        grow at their next tick rather than after this one's heartbeat goes stale."""
        for agent in self._scalers:
            pipe = self.redis.pipeline(transaction=False)
            pipe.zrem(self.keyspace.scale_members(agent), self.process)
            pipe.hdel(self.keyspace.scale_latency(agent), self.process)
            await pipe.execute()
            await lease.release(self.redis, self.keyspace.scale_lease(agent), self.process)


async def measure(redis: Redis, keyspace: Keyspace, agent: str) -> tuple[int, int]:
    """``agent``'s backlog (lag + pending) and entries-added counter, summed over shards.
    A lag Redis cannot tell (after deletions) counts the whole stream: better too many
    consumers for a moment than a backlog nobody drains."""
    backlog = added = 0
    for shard in keyspace.all_shards():
        stream = keyspace.tasks(shard, agent)
        try:
            info = await redis.xinfo_stream(stream)
            groups = await redis.xinfo_groups(stream)
        except ResponseError:
            continue  # no stream yet
        added += info["entries-added"]
        for group in groups:
            if group["name"] == agent.encode():
                lag = group.get("lag")
                backlog += group["pending"] + (info["length"] if lag is None else lag)
    return backlog, added


async def desired_counts(redis: Redis, keyspace: Keyspace, agents: Sequence[str]) -> dict[str, int]:
    """The published desired consumer count of each agent that has one.  One GET per key, not
    MGET: the keys carry no common hash tag, so in a Cluster they live in different slots."""
    pipe = redis.pipeline(transaction=False)
    for agent in agents:
        pipe.get(keyspace.scale_desired(agent))
    values = await pipe.execute()
    return {agent: int(v) for agent, v in zip(agents, values, strict=True) if v is not None}
