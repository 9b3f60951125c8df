"""Durable submits (``ClientSettings.durable``): a submission is on disk before ``submit``
returns, as far as the Redis version allows.

Redis 7.2 has WAITAOF: sent on the submit's connection right after it, it waits until the
local AOF has fsynced that write.  Older Redis (7.0 here) has no such command; there a write
is on disk before its reply only with ``appendonly yes`` and ``appendfsync always``, so the
client checks that once and warns when it does not hold: a power loss can then take the
last second of acknowledged submissions (row B3 of the fault matrix measures it).

Replica acknowledgement (``ClientSettings.replicas``) follows the same pattern: WAIT, sent on
the submit's connection right after it, returns how many replicas have processed everything
that connection wrote, once ``replicas`` have or ``replica_timeout`` passed; fewer raises
``NotReplicated`` (the submission is on the primary all the same).  That is all WAIT says:
Redis replication stays asynchronous, the copy is in the replicas' memory, not yet on their
disk, and a failover that promotes a replica without it still loses it (row B6 measures it).
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoPermissionError, ResponseError

from streamproc.errors import NotDurable, NotReplicated

log = logging.getLogger(__name__)


class Fsync(Enum):
    WAITAOF = "waitaof"  # ask Redis to confirm each submission's fsync
    ALWAYS = "always"  # every write is fsynced before its reply
    NONE = "none"  # nothing to wait for: warned once


def version_of(info: dict[str, object]) -> tuple[int, ...]:
    return tuple(int(part) for part in str(info.get("redis_version", "0")).split(".")[:2])


async def detect(redis: Redis) -> Fsync:
    """How this Redis can make a submission durable."""
    info = await redis.info("server")
    if version_of(info) >= (7, 2):
        return Fsync.WAITAOF
    return await without_waitaof(redis, str(info.get("redis_version", "?")))


async def without_waitaof(redis: Redis, version: str) -> Fsync:
    try:
        config = await redis.config_get("appendonly")
        config |= await redis.config_get("appendfsync")
    except (NoPermissionError, ResponseError) as exc:
        log.warning(
            "durable submits: Redis %s has no WAITAOF and its fsync policy is "
            "unreadable (%s); submissions may not be on disk when acknowledged",
            version,
            exc,
        )
        return Fsync.NONE
    if config.get("appendonly") == "yes" and config.get("appendfsync") == "always":
        return Fsync.ALWAYS
    log.warning(
        "durable submits: Redis %s has no WAITAOF (7.2+) and is not set to appendonly yes "
        "with appendfsync always (appendonly %s, appendfsync %s): a power loss can lose the "
        "last second of acknowledged submissions",
        version,
        config.get("appendonly"),
        config.get("appendfsync"),
    )
    return Fsync.NONE


def fsynced(reply: Any, timeout: float) -> bool:
    """WAITAOF's reply after a submission; raises :class:`NotDurable` when it was not fsynced
    within ``timeout``.  False when Redis refused WAITAOF (a server that says 7.2 but lacks
    the command): durable submits then rely on appendfsync."""
    if isinstance(reply, ResponseError):
        log.warning("WAITAOF refused (%s): durable submits now rely on appendfsync", reply)
        return False
    if int(reply[0]) < 1:
        raise NotDurable(
            f"the submission was not fsynced within {timeout}s; "
            "it is in Redis and may be lost on power loss: submit again (same id) to check"
        )
    return True


def check_replicas(reply: Any, replicas: int, timeout: float) -> None:
    """WAIT's reply: how many replicas have everything this connection wrote; fewer than
    ``replicas`` raises :class:`NotReplicated`.  Refused (a user without WAIT, or a replica
    taken for the primary), it is raised as is."""
    if isinstance(reply, ResponseError):
        raise reply
    if int(reply) < replicas:
        raise NotReplicated(int(reply), replicas, timeout)
