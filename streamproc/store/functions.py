"""The engine's Redis Functions (``lua/*.lua``), their versions and calling convention.

Redis keeps one function of a name for all clients, and a library loaded with REPLACE takes
over every name it registers.  So each library is loaded under a name that carries the digest
of its code, and so is each of its functions (``sp_submit`` runs as ``sp_submit_<digest>``):
during a rolling upgrade the processes of each release call the code they were written
against, side by side, and no process replaces another release's functions by starting.  The
data they share (hashes, stream entries) stays compatible across releases; a library left
behind by a release no process runs any more can be removed with ``FUNCTION DELETE``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoPermissionError, ResponseError

from streamproc.errors import ConfigError
from streamproc.store.keys import Keyspace

log = logging.getLogger(__name__)

Arg = str | bytes | int | float
_LIBRARY_NAME = re.compile(r"\A#!lua name=(\w+)")
_REGISTERED = re.compile(r"redis\.register_function\('(\w+)'")


@dataclass(frozen=True)
class Library:
    """A Lua library as written (plain names), and as loaded (names suffixed by ``tag``)."""

    source: str

    @cached_property
    def tag(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()[:12]

    @cached_property
    def code(self) -> str:
        code = _LIBRARY_NAME.sub(rf"#!lua name=\1_{self.tag}", self.source, count=1)
        return _REGISTERED.sub(rf"redis.register_function('\1_{self.tag}'", code)

    @classmethod
    def packaged(cls, filename: str) -> Library:
        return cls(resources.files("streamproc.store").joinpath("lua", filename).read_text())

    def function(self, name: str) -> str:
        """The name ``name`` is loaded under."""
        return f"{name}_{self.tag}"


ENGINE = Library.packaged("streamproc.lua")
LIMITS = Library.packaged("limits.lua")
CACHE = Library.packaged("cache.lua")


async def load(redis: Redis, *libraries: Library) -> bool:
    """Install ``libraries`` (all of this release's by default; idempotent: the same code
    under the same name), as every daemon and client does at start.  False when this user may
    not load functions (least privilege): an admin must have loaded this release's functions
    (deploy/acl.conf)."""
    try:
        for library in libraries or (ENGINE, LIMITS, CACHE):
            await redis.function_load(library.code, replace=True)
    except NoPermissionError:
        log.debug("not allowed to load Redis functions; using those loaded")
        return False
    return True


def is_missing_library(exc: ResponseError) -> bool:
    """True when Redis lacks the library: never loaded in this release, or lost (restarted
    without persistence, flushed)."""
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


def queue(pipe: Pipeline, name: str, arguments: list[Arg], library: Library = ENGINE) -> None:
    pipe.fcall(library.function(name), *arguments)  # type: ignore[arg-type]  # numkeys leads


async def call(redis: Redis, name: str, arguments: list[Arg], library: Library = ENGINE) -> Any:
    """FCALL ``name`` of ``library``, loading the library once if Redis lacks it."""
    function = library.function(name)
    try:
        return await redis.fcall(function, *arguments)  # type: ignore[arg-type]
    except ResponseError as exc:
        if not is_missing_library(exc):
            raise
    if not await load(redis, library):
        raise ConfigError(
            f"Redis function {function} is not loaded and this user may not load it: "
            "run any streamproc command of this release once as an admin user"
        )
    return await redis.fcall(function, *arguments)  # type: ignore[arg-type]
