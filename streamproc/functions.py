"""The engine's Redis Functions (``lua/streamproc.lua``) and their calling convention."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoPermissionError, ResponseError

from streamproc.errors import ConfigError
from streamproc.keys import Keyspace

log = logging.getLogger(__name__)

LIBRARY = resources.files("streamproc").joinpath("lua/streamproc.lua").read_text()
Arg = str | bytes | int | float


async def load(redis: Redis, library: str = LIBRARY) -> bool:
    """Install (or upgrade) ``library``; idempotent, run by every daemon and client at start.
    False when this user may not load functions (least privilege): an admin must have loaded
    them (deploy/acl.conf)."""
    try:
        await redis.function_load(library, replace=True)
    except NoPermissionError:
        log.debug("not allowed to load Redis functions; using those loaded")
        return False
    return True


def is_missing_library(exc: ResponseError) -> bool:
    """True when Redis lost the library (restarted without persistence, or flushed)."""
    return "Function not found" in str(exc)


def arguments(
    keyspace: Keyspace,
    shard: int,
    agents: Sequence[str],
    workflow_keys: Sequence[str],
    args: Sequence[Arg],
) -> list[Arg]:
    """numkeys, KEYS and ARGV in the shared layout described in the library's header."""
    keys: list[Arg] = list(keyspace.head(shard))
    for agent in agents:
        keys += (keyspace.tasks(shard, agent), keyspace.dead(shard, agent))
    for key in workflow_keys:
        keys += (key, keyspace.history_of(key))
    return [len(keys), *keys, len(agents), *agents, *args]


def queue(pipe: Pipeline, name: str, arguments: list[Arg]) -> None:
    pipe.fcall(name, *arguments)  # type: ignore[arg-type]  # numkeys leads the list


async def call(redis: Redis, name: str, arguments: list[Arg], library: str = LIBRARY) -> Any:
    """FCALL ``name`` of ``library``, loading the library once if Redis lost it (restarted
    without persistence, flushed) or never had it."""
    try:
        return await redis.fcall(name, *arguments)  # type: ignore[arg-type]
    except ResponseError as exc:
        if not is_missing_library(exc):
            raise
    if not await load(redis, library):
        raise ConfigError(
            f"Redis function {name} is not loaded and this user may not load it: "
            "run any streamproc command once as an admin user"
        )
    return await redis.fcall(name, *arguments)  # type: ignore[arg-type]
