"""What retention left of a task or completion stream, and the debug consumer groups that
``replay stream`` makes on one (listed by ``status``, expired by the resolver when idle)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from streamproc.errors import ConfigError
from streamproc.store.codec import entry_order
from streamproc.store.ids import check_id
from streamproc.store.keys import DEBUG_GROUP_PREFIX, RESOLVER_GROUP, Keyspace
from streamproc.transport.groups import DebugGroup, debug_groups


@dataclass(frozen=True)
class Trimmed:
    """How much of a stream is gone (trimmed, or deleted one by one), from XINFO STREAM.
    ``first`` is the oldest entry left (None: none is), ``last`` the newest ever added."""

    gone: int
    added: int
    first: bytes | None
    last: bytes

    def covers(self, start: str) -> bool:
        """Whether a range from ``start`` reaches back into what is gone."""
        if start == "-" or self.first is None:
            return True
        return entry_order(start) < entry_order(self.first)

    def notice(self) -> str:
        where = f"before {self.first.decode()}" if self.first else f"up to {self.last.decode()}"
        ms, _ = entry_order(self.first or self.last)
        when = datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return (
            f"trimmed: entries {where} ({when}) are gone ({self.gone} of {self.added} ever "
            "added); workflows' entries from before then may be missing"
        )


async def trimmed(redis: Redis, stream: str) -> Trimmed | None:
    """What is gone from ``stream``, or None when every entry ever added is still there."""
    info = await redis.xinfo_stream(stream)
    gone = info["entries-added"] - info["length"]
    if gone <= 0:
        return None
    first = info["first-entry"][0] if info.get("first-entry") else None
    return Trimmed(gone, info["entries-added"], first, info["last-generated-id"])


def debug_name(name: str) -> str:
    """``name`` if it can name a debug group: the prefix keeps it apart from the groups that
    serve streams, and lets the resolver expire it."""
    check_id("group", name)
    if not name.startswith(DEBUG_GROUP_PREFIX) or name == DEBUG_GROUP_PREFIX:
        raise ConfigError(f"a debug group's name starts with {DEBUG_GROUP_PREFIX}: not {name!r}")
    return name


async def create_debug_group(redis: Redis, stream: str, name: str, position: str) -> None:
    """A debug group after ``position``, with one consumer, so that its idle time counts
    from now (a group without consumers counts as expired); :class:`ConfigError` when the
    stream has one by that name already."""
    try:
        await redis.xgroup_create(stream, debug_name(name), position)
    except ResponseError as exc:
        if not str(exc).startswith("BUSYGROUP"):
            raise
        raise ConfigError(
            f"debug group {name} already exists on {stream}: read it, or remove it with "
            f"--drop-group {name}"
        ) from None
    await redis.xgroup_createconsumer(stream, name, "replay")


async def drop_debug_group(redis: Redis, stream: str, name: str) -> bool:
    """Remove debug group ``name``; False when the stream has none by that name."""
    return bool(await redis.xgroup_destroy(stream, debug_name(name)))


async def all_debug_groups(redis: Redis, keyspace: Keyspace, agents: list[str]) -> list[DebugGroup]:
    """Every debug group on the completion streams and the task streams of ``agents``."""
    found = []
    for shard in keyspace.all_shards():
        found += await debug_groups(redis, keyspace.done(shard), RESOLVER_GROUP)
        for agent in agents:
            found += await debug_groups(redis, keyspace.tasks(shard, agent), agent)
    return found
