"""The Redis Cluster client the engine uses (``RedisSettings(cluster=True).connect()``).

redis-py routes a command by its keys' slot.  For a command whose keys move with its
arguments (FCALL, XREAD, XREADGROUP: the engine's every call and read), it asks a node with
COMMAND GETKEYS first: one more round trip per command, carrying every argument (a whole
batch of completions) a second time.  Their syntax names the keys plainly, so here they are
read off the arguments; any other command, or one that does not parse, goes the usual way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException

READ_OPTIONS = {"COUNT": 2, "BLOCK": 2, "NOACK": 1}  # option: tokens it takes, itself included


class EngineCluster(RedisCluster):
    """A ``RedisCluster`` that finds the slot of FCALL, XREAD and XREADGROUP itself."""

    async def _determine_slot(self, command: str, *args: Any) -> int:
        keys = command_keys(command, args)
        if not keys:
            return await super()._determine_slot(command, *args)
        slots = {self.keyslot(key) for key in keys}
        if len(slots) != 1:
            raise RedisClusterException(f"{command} - all keys must map to the same key slot")
        return slots.pop()


def command_keys(command: str, args: Sequence[Any]) -> list[Any] | None:
    """The keys of an FCALL(_RO), XREAD or XREADGROUP call; None for other commands."""
    name = command.upper()
    try:
        if name in ("FCALL", "FCALL_RO"):
            return list(args[2 : 2 + int(args[1])])
        if name in ("XREAD", "XREADGROUP"):
            return _stream_keys(args, 3 if name == "XREADGROUP" else 0)
    except (IndexError, ValueError):
        pass
    return None


def _stream_keys(args: Sequence[Any], at: int) -> list[Any] | None:
    """The keys after STREAMS (half of what follows it), past GROUP and the read options, so
    a group, consumer or key that is itself called "streams" is not mistaken for the token."""
    while at < len(args):
        word = _text(args[at]).upper()
        if word == "STREAMS":
            rest = args[at + 1 :]
            return list(rest[: len(rest) // 2])
        if word not in READ_OPTIONS:
            return None
        at += READ_OPTIONS[word]
    return None


def _text(arg: Any) -> str:
    return arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg)


def is_cluster(redis: Redis) -> bool:
    """Whether ``redis`` is a Cluster client: its callers split commands that span slots (an
    XREAD over several shards), and keep redis-py's routing where others use a lane."""
    return isinstance(redis, RedisCluster)
