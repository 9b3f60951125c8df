"""The engine's Redis Functions (``lua/``), their versions, constants and calling.

Redis keeps one function of a name for all clients, and a library loaded with REPLACE takes
over every name it registers.  So each library is loaded under a name that carries the digest
of its code, and so is each of its functions (``sp_submit`` runs as ``sp_submit_<digest>``):
during a rolling upgrade the processes of each release call the code they were written
against, side by side, and no process replaces another release's functions by starting.  The
data they share (hashes, stream entries) stays compatible across releases; a library left
behind by a release no process runs any more can be removed with ``FUNCTION DELETE``.

A library's source is its ``#!lua`` line, then a prelude of the constants it shares with
Python (hash and entry field names, what an absent hash field reads as, event kinds, state
names, the resolver's group, the entry format version), rendered here from the Python
modules that own them, then its Lua files in order.  No Lua file spells one of those
constants, and the digest covers them.  The typed calls of each library's
functions are in ``calls.py`` (engine; also ``admin.py``, ``agents.py``, ``stow.py`` and
``tenants.py``),
``limits.py`` and ``cache.py``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from importlib import resources
from typing import Any, Generic, TypeVar, get_args

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoPermissionError, ResponseError

from streamproc.errors import ConfigError
from streamproc.store.codec import (
    MAX_ENTRY_BYTES,
    PARKED_VALUE_BYTES,
    VERSION,
    Acks,
    CompletionKind,
)
from streamproc.store.entries import EntryField, EventKind
from streamproc.store.fields import (
    ABSENT,
    CacheField,
    SignalField,
    TaskField,
    UsageField,
    WorkflowField,
)
from streamproc.store.keys import DELAYED_SEPARATOR, RESOLVER_GROUP, WATCH_MS
from streamproc.store.state import Breaker, Health, TaskStatus, Verdict, WorkflowStatus
from streamproc.transport.cluster import is_cluster

log = logging.getLogger(__name__)

Arg = str | bytes | int | float
R = TypeVar("R")
Constant = str | Mapping[str, str]
_LIBRARY_NAME = re.compile(r"\A#!lua name=(\w+)")
_REGISTERED = re.compile(r"redis\.register_function\('(\w+)'")
_LUA_NAME = re.compile(r"[A-Za-z_]\w*")
_LUA_TEXT = re.compile(r"[\w .:-]*")


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
    def packaged(
        cls, name: str, files: Sequence[str], constants: Mapping[str, Constant]
    ) -> Library:
        """The library ``name``: the prelude of ``constants``, then ``files`` (paths under
        ``lua/``) joined in order, so each file sees the locals of those before it."""
        folder = resources.files("streamproc.store").joinpath("lua")
        parts = [f"#!lua name={name}\n{prelude(constants)}"]
        parts += [folder.joinpath(*file.split("/")).read_text() for file in files]
        return cls("\n".join(parts))

    @cached_property
    def name(self) -> str:
        """The library's name as loaded."""
        match = _LIBRARY_NAME.match(self.source)
        if match is None:
            raise ValueError("a library's source begins with its '#!lua name=' line")
        return f"{match[1]}_{self.tag}"

    def function(self, name: str) -> str:
        """The name ``name`` is loaded under."""
        return f"{name}_{self.tag}"


def prelude(constants: Mapping[str, Constant]) -> str:
    """``constants`` as Lua locals: a string, or a table of strings."""
    if not constants:
        return ""
    lines = [
        "-- The constants this library shares with Python, rendered from the Python modules",
        "-- that own them by streamproc/store/functions.py (edit them there, not here).",
    ]
    for name, value in constants.items():
        if isinstance(value, str):
            lines.append(f"local {_lua_name(name)} = {_lua_text(value)}")
        else:
            lines.append(f"local {_lua_name(name)} = {{")
            lines += [f"  {_lua_name(k)} = {_lua_text(v)}," for k, v in value.items()]
            lines.append("}")
    return "\n".join(lines) + "\n"


def by_name(values: type[StrEnum]) -> dict[str, str]:
    """An enum's values by member name, lower case: ``TaskStatus.DONE`` is ``TS.done``."""
    return {member.name.lower(): member.value for member in values}


def by_value(values: Any) -> dict[str, str]:
    """A Literal type's values, each named after itself: ``"half-open"`` is ``half_open``."""
    return {value.replace("-", "_"): value for value in get_args(values)}


def _lua_name(name: str) -> str:
    if not _LUA_NAME.fullmatch(name):
        raise ValueError(f"not a Lua name: {name!r}")
    return name


def _lua_text(value: str) -> str:
    if not _LUA_TEXT.fullmatch(value):
        raise ValueError(f"not rendered as a Lua string: {value!r}")
    return f"'{value}'"


ENGINE = Library.packaged(
    "streamproc",
    [
        f"engine/{file}.lua"
        for file in (
            "common",
            "history",
            "dead",
            "submit",
            "grow",
            "map",
            "wait",
            "adjust",
            "resolve",
            "started",
            "recovery",
            "admin",
            "prune",
        )
    ],
    {
        "GROUP": RESOLVER_GROUP,
        "VERSION": VERSION.decode(),
        "DELAYED_SEPARATOR": DELAYED_SEPARATOR,
        "PARKED_BYTES": str(PARKED_VALUE_BYTES),
        "ENTRY_BYTES": str(MAX_ENTRY_BYTES),
        "WATCH_MS": str(WATCH_MS),
        "WF": by_name(WorkflowField),
        "TF": {field.name.lower(): field.prefix for field in TaskField},
        "SG": {field.name.lower(): field.prefix for field in SignalField},
        "ABSENT": {field.name.lower(): str(value) for field, value in ABSENT.items()},
        "TS": by_name(TaskStatus),
        "WS": by_name(WorkflowStatus),
        "KIND": by_name(CompletionKind),
        "ACKS": by_name(Acks),
        "EF": by_name(EntryField),
        "EV": by_name(EventKind),
        "US": by_name(UsageField),
    },
)
LIMITS = Library.packaged(
    "streamproc_limits",
    ["limits.lua"],
    {"VERDICT": by_value(Verdict), "HEALTH": by_value(Health), "BREAKER": by_value(Breaker)},
)
CACHE = Library.packaged("streamproc_cache", ["cache.lua"], {"CF": by_name(CacheField)})


async def load(redis: Redis, *libraries: Library) -> bool:
    """Install ``libraries`` (all of this release's by default) where Redis lacks them, as
    every daemon and client does at start.  A library's name carries its code's digest, so
    one loaded under that name is this code: loading it again would cost Redis a compile
    (some milliseconds, every client waiting) and the AOF a copy of the code.  False when
    this user may not load functions (least privilege): an admin must have loaded this
    release's functions (deploy/acl.conf)."""
    try:
        for library in await _missing(redis, libraries or (ENGINE, LIMITS, CACHE)):
            await redis.function_load(library.code, replace=True)  # replace: a racing load
    except NoPermissionError:
        log.debug("not allowed to load Redis functions; using those loaded")
        return False
    return True


async def _missing(redis: Redis, libraries: Sequence[Library]) -> Sequence[Library]:
    """Those of ``libraries`` Redis has not loaded, asked in one round trip; all of them on a
    Cluster (each primary keeps its own functions) or for a user who may not list them."""
    if is_cluster(redis):
        return libraries
    pipe = redis.pipeline(transaction=False)
    for library in libraries:
        pipe.function_list(library=library.name)
    try:
        listed = await pipe.execute()
    except NoPermissionError:
        return libraries
    return [library for library, found in zip(libraries, listed, strict=True) if not found]


def is_missing_library(exc: ResponseError) -> bool:
    """True when Redis lacks the library: never loaded in this release, or lost (restarted
    without persistence, flushed)."""
    return "Function not found" in str(exc)


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


@dataclass(frozen=True)
class Function(Generic[R]):
    """One function of a library, and how its reply reads: called at once, or queued on a
    pipeline (its reply then read with ``reply``).  ``arguments`` are numkeys, KEYS, ARGV as
    its typed call (``calls.py``, ``limits.py``, ``cache.py``) lays them out."""

    name: str
    library: Library
    reply: Callable[[Any], R]

    async def __call__(self, redis: Redis, arguments: list[Arg]) -> R:
        return self.reply(await call(redis, self.name, arguments, self.library))

    def queue(self, pipe: Pipeline, arguments: list[Arg]) -> None:
        queue(pipe, self.name, arguments, self.library)

    def command(self, arguments: list[Arg]) -> list[Arg]:
        """The FCALL command itself, to send by other means than redis-py's."""
        return ["FCALL", self.library.function(self.name), *arguments]


def text(value: bytes | str) -> str:
    """A string reply (bytes unless the connection decodes replies)."""
    return value.decode() if isinstance(value, bytes) else value
