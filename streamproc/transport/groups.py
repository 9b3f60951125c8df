"""Joining and leaving consumer groups without losing pending entries."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import NoPermissionError, ResponseError

from streamproc.store.keys import DEBUG_GROUP_PREFIX, Keyspace

log = logging.getLogger(__name__)
JOIN_ATTEMPTS = 3


async def ensure_group(redis: Redis, stream: str, group: str) -> None:
    """Create ``group`` on ``stream`` (and the stream) unless it exists; it reads from the start."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def join_group(redis: Redis, stream: str, group: str, consumer: str) -> None:
    """Create ``group`` if need be and ``consumer`` in it at once, rather than at its first
    delivery, so an idle worker already counts as serving the stream (submit and status
    tell agents nobody serves by their groups' consumers).  The resolver's prune of unused
    agents (``store/agents.py``) may remove the stream between the two steps: then again."""
    for attempt in range(JOIN_ATTEMPTS):
        await ensure_group(redis, stream, group)
        try:
            await redis.xgroup_createconsumer(stream, group, consumer)
            return
        except ResponseError as exc:
            gone = "NOGROUP" in str(exc) or "requires the key to exist" in str(exc)
            if not gone or attempt == JOIN_ATTEMPTS - 1:
                raise


async def served_agents(redis: Redis, keyspace: Keyspace, names: Iterable[str]) -> set[str]:
    """Those of ``names`` whose consumer group has a consumer on some shard: a worker joins
    its groups as a consumer when it starts and leaves them when it stops (a worker killed
    outright stays a consumer until its entries are claimed and it is removed).  One round
    trip: every stream's groups are asked for in one pipeline."""
    shards = keyspace.all_shards()
    asked = [(name, keyspace.tasks(shard, name)) for name in names for shard in shards]
    if not asked:
        return set()
    pipe = redis.pipeline(transaction=False)
    for _, stream in asked:
        pipe.xinfo_groups(stream)
    replies = await pipe.execute(raise_on_error=False)
    served: set[str] = set()
    for (name, _), groups in zip(asked, replies, strict=True):
        if isinstance(groups, ResponseError):
            continue  # no stream: nobody ever served it on this shard
        if any(g["name"] == name.encode() and g["consumers"] for g in groups):
            served.add(name)
    return served


async def group_positions(redis: Redis, stream: str) -> dict[bytes, tuple[bytes, bytes | None]]:
    """Each consumer group of ``stream`` by name: the last entry it read, and its oldest
    pending entry (None when nothing is pending).  Empty when there is no stream."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:
        return {}
    positions: dict[bytes, tuple[bytes, bytes | None]] = {}
    for group in groups:
        oldest = None
        if group["pending"]:  # may be None by now: its last pending entry was acked meanwhile
            oldest = (await redis.xpending(stream, group["name"]))["min"]
        positions[group["name"]] = (group["last-delivered-id"], oldest)
    return positions


@dataclass(frozen=True)
class DebugGroup:
    """A consumer group made for debugging on ``stream``; ``idle`` is the seconds since any of
    its consumers last read (None: it has no consumer, so nobody can be using it)."""

    stream: str
    name: str
    idle: float | None
    pending: int
    lag: int | None


async def debug_groups(redis: Redis, stream: str, owner: str) -> list[DebugGroup]:
    """The debug groups of ``stream``: named with the prefix, and not ``owner``, the group
    that serves the stream (an agent may itself be named with the prefix)."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:
        return []
    found = []
    for group in groups:
        name = group["name"].decode()
        if not name.startswith(DEBUG_GROUP_PREFIX) or name == owner:
            continue
        consumers = await redis.xinfo_consumers(stream, name)
        idle_ms = min((c["idle"] for c in consumers), default=None)
        idle = None if idle_ms is None else idle_ms / 1000
        found.append(DebugGroup(stream, name, idle, group["pending"], group.get("lag")))
    return found


async def drop_idle_debug_groups(
    redis: Redis, stream: str, owner: str, max_idle: float
) -> Collection[bytes]:
    """Destroy the debug groups of ``stream`` idle longer than ``max_idle`` seconds (or with
    no consumer) and return their names.  A user the ACL denies XGROUP DESTROY leaves them in
    place; the caller ignores them all the same, so a forgotten one holds nothing back."""
    expired = [
        g.name
        for g in await debug_groups(redis, stream, owner)
        if g.idle is None or g.idle > max_idle
    ]
    for name in expired:
        try:
            await redis.xgroup_destroy(stream, name)
            log.info("dropped debug group %s of %s, idle too long", name, stream)
        except NoPermissionError:
            log.warning("debug group %s of %s expired, but may not be destroyed", name, stream)
    return {name.encode() for name in expired}


async def reap(
    redis: Redis, keyspace: Keyspace, stream: str, group: str, max_idle: float
) -> list[str]:
    """Remove the consumers of ``group`` whose worker no longer marks itself alive
    (``Keyspace.alive``), idle over ``max_idle`` seconds and holding no pending entry: their
    worker was killed outright (one that stops leaves its groups), and until removed they
    count as serving the stream (``served_agents``, ``status``).  Idle alone says nothing:
    Redis 7.0 counts a consumer idle while its blocked reads find nothing.  One holding
    entries stays until a sweep has taken them over.  The names removed."""
    try:
        consumers = await redis.xinfo_consumers(stream, group)
    except ResponseError:  # no stream or no group
        return []
    reaped = []
    for consumer in consumers:
        name = consumer["name"].decode()
        if consumer["pending"] or consumer["idle"] <= max_idle * 1000:
            continue
        gone = not await redis.exists(keyspace.alive(name))
        if gone and await leave_group(redis, stream, group, name):
            reaped.append(name)
    return reaped


async def leave_group(redis: Redis, stream: str, group: str, consumer: str) -> bool:
    """Delete ``consumer`` only if it holds no pending entry: XGROUP DELCONSUMER would drop
    them from the group's pending list, and nobody could reclaim them."""
    pending = await redis.xpending_range(stream, group, "-", "+", 1, consumername=consumer)
    if pending:
        return False
    await redis.xgroup_delconsumer(stream, group, consumer)
    return True
