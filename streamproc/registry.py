"""Agents plug in by name: the ``@agent`` decorator, or the entry-point group
``streamproc.agents`` (name = agent name, value = the agent function)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from streamproc.errors import ConfigError
from streamproc.runtime import Runtime
from streamproc.spec.model import TaskSpec
from streamproc.store.chunks import encode_chunk
from streamproc.store.ids import ID_PATTERN

if TYPE_CHECKING:
    from streamproc.engine.output import Emitter

ENTRY_POINT_GROUP = "streamproc.agents"
REPLAY_AGENT = "replay"  # reserved: ``streamproc replay run`` serves it with recorded outcomes


@dataclass(frozen=True, slots=True)
class Task:
    """What an agent receives: its input, the results of the tasks it needs and the runtime
    of the worker running it (``None`` when the agent is called outside a worker)."""

    workflow: str
    id: str
    attempt: int
    input: Any
    deps: dict[str, Any]
    runtime: Runtime | None = field(default=None, repr=False, compare=False)
    emitter: Emitter | None = field(default=None, repr=False, compare=False)
    signal: Any = None  # the payload of the signal a WaitFor of an earlier attempt awaited
    resumed: bool = False  # whether that signal came: its payload may be None (sent with none)

    async def emit(self, chunk: Any) -> None:
        """Stream ``chunk`` (a str, or any JSON value) to the workflow's output while the task
        runs: it reaches ``Client.follow``, ``streamproc events --workflow`` and the API's
        event stream as an ``output`` event.  Returns at once (the worker writes it in the
        background); :class:`~streamproc.errors.EmitRefused` for a chunk over 64 KiB as JSON,
        not JSON, or past 10,000 chunks of this attempt.  Outside a worker the chunk is only
        checked."""
        self.emit_sync(chunk)

    def emit_sync(self, chunk: Any) -> None:
        """:meth:`emit` for a plain function agent (it runs in a thread, without a loop)."""
        encoded = encode_chunk(chunk)
        if self.emitter is not None:
            self.emitter.put(encoded)


@dataclass(frozen=True, slots=True)
class Adjust:
    """Returned by an agent that judged an upstream result weak ("evaluate and adjust"): its own
    ``result`` stands, and task ``task`` (this one or any it depends on, directly or not) runs
    again with ``input``, followed by every task downstream of it, this one included.  Past the
    workflow's ``adjust_rounds`` for that task the request is refused and recorded, and
    ``result`` is kept as if no adjustment had been asked for."""

    task: str
    input: Any
    reason: str
    result: Any = None


@dataclass(frozen=True, slots=True)
class Spawn:
    """Returned by an agent that planned work at run time: its own ``result`` stands, and
    ``tasks`` (:class:`TaskSpec` objects, or mappings as a spec's tasks are written) join the
    running workflow in the step that records it.  Each spawned task needs this one, and may
    also need tasks of the same spawn or tasks already done; every task that needed this one
    also waits for all of them (and gets their results in ``deps``).  A spawn that breaks a
    rule (an id already used, a cycle, an unknown agent, the workflow's ``Limits``) adds
    nothing: this task fails for good, the reason in its dead letter.  An ``Adjust`` that
    re-runs this task supersedes what it spawned, and it spawns anew."""

    tasks: Sequence[TaskSpec | Mapping[str, Any]]
    result: Any = None


AgentFn = Callable[[Task], Awaitable[Any]] | Callable[[Task], Any]
_agents: dict[str, AgentFn] = {}
_entry_points_loaded = False
_bundled: set[str] = set()  # agents that only the entry points brought in


def agent(name: str) -> Callable[[AgentFn], AgentFn]:
    """Register the decorated function (async, or sync: run in a thread) as agent ``name``."""
    if not isinstance(name, str):  # a bare @agent hands over the function itself
        raise ConfigError(f'agent() takes the agent\'s name, as in @agent("search"), not {name!r}')
    if not ID_PATTERN.fullmatch(name):
        raise ConfigError(f"invalid agent name {name!r}: use A-Z a-z 0-9 _ . -")
    if name == REPLAY_AGENT:
        raise ConfigError(f"agent name {name!r} is reserved for replays: choose another")

    def register(fn: AgentFn) -> AgentFn:
        if not callable(fn):
            raise ConfigError(f"agent {name!r}: {fn!r} is not a function")
        if _agents.get(name, fn) is not fn:
            raise ConfigError(f"agent {name!r} is already registered to another function")
        _agents[name] = fn
        return fn

    return register


def registered() -> dict[str, AgentFn]:
    """Every agent known to this process: decorated ones and the entry-point group's."""
    global _entry_points_loaded
    if not _entry_points_loaded:
        before = set(_agents)
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            fn = ep.load()
            _agents.setdefault(ep.name, fn)
        _bundled.update(set(_agents) - before)
        _entry_points_loaded = True
    return dict(_agents)


def imported() -> dict[str, AgentFn]:
    """The agents registered by code this process imported itself (``--import``), without
    those only the entry-point group brought in (installed packages' agents)."""
    return {name: fn for name, fn in registered().items() if name not in _bundled}


async def call_agent(fn: AgentFn, task: Task) -> Any:
    """Await ``fn(task)``.  A plain function runs in a daemon thread of its own (with the
    caller's context variables, as ``asyncio.to_thread`` would): nothing can stop a thread,
    and an exiting process waits for an executor's threads, so one hung agent would hold up
    a worker's shutdown past its grace period for good; a daemon thread ends with the process."""
    if inspect.iscoroutinefunction(fn):
        return await fn(task)
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def run() -> None:
        try:
            settle = partial(_settle, answer, context.run(fn, task), None)
        except BaseException as exc:  # handed to the awaiting task as it is
            settle = partial(_settle, answer, None, exc)
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody awaits the answer
            loop.call_soon_threadsafe(settle)

    threading.Thread(target=run, name=f"agent {task.workflow}/{task.id}", daemon=True).start()
    return await answer


def _settle(answer: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if answer.cancelled():
        return
    if exc is None:
        answer.set_result(result)
    else:
        answer.set_exception(exc)
