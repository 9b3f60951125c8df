"""Running an agent on one task, and what it came to: the completion kind the resolver
applies, its output (the result as JSON, or the error text) and, when the agent asked for
one, an adjustment, a wait or the tasks it spawns.  Whatever the agent raises or returns
ends here as an outcome."""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import orjson

from streamproc.engine.output import Emitter
from streamproc.engine.spawning import SpawnRefused, encode_spawn
from streamproc.engine.tracebacks import format_traceback
from streamproc.errors import ConfigError, PermanentError, RecordedFailure, RetryLater, WaitFor
from streamproc.registry import Adjust, AgentFn, Spawn, Task, call_agent
from streamproc.runtime import Runtime
from streamproc.spec.checks import MAX_TIMEOUT, is_seconds
from streamproc.store.codec import AdjustRequest, TaskEvent
from streamproc.store.ids import ID_PATTERN, TASK_PATTERN
from streamproc.store.payloads import dumps_payload

log = logging.getLogger(__name__)
MAX_ERROR_CHARS = 4000


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: bytes  # ok | adjust | spawn | error | fatal | wait | await
    output: bytes
    adjust: AdjustRequest | None = None
    wait: tuple[int, int] | None = None  # retry in ms, give up after ms
    spawn: bytes | None = None  # the tasks a spawn adds (engine/spawning.py)
    traceback: str = ""  # of an error or fatal outcome the agent raised
    awaits: int | None = None  # an await's timeout in ms (0: none); its output is the signal


class _TimedOut(Exception):
    """The task's timeout passed (unlike a TimeoutError the agent raised itself)."""


async def run_agent(
    agent: AgentFn,
    event: TaskEvent,
    max_result_bytes: int,
    runtime: Runtime | None = None,
    emitter: Emitter | None = None,
    agents: Collection[str] | None = None,
) -> Outcome:
    """Run ``agent`` on the event's task, handed ``runtime`` and the ``emitter`` its chunks
    go through, within the task's timeout.  An exception is an ``error`` outcome (retried),
    :class:`PermanentError` or a result that cannot be stored is ``fatal``, and
    :class:`RetryLater` a ``wait``, :class:`WaitFor` an ``await``.  A :class:`Spawn` is checked
    against ``agents`` (the known
    registry, when there is one)."""
    task = Task(
        event.workflow,
        event.task,
        event.attempt,
        event.input,
        event.deps,
        runtime,
        emitter,
        event.signal,
        event.resumed,
    )
    try:
        result = await _call_within(agent, task, event.timeout)
    except WaitFor as exc:
        return _await(exc, event)
    except _TimedOut:
        log.warning("task timed out after %ss", event.timeout, extra=_ids(event))
        return Outcome(b"error", f"timed out after {event.timeout}s".encode())
    except RetryLater as exc:
        return _retry_later(exc, event)
    except RecordedFailure as exc:  # replay reproducing a past failure: expected, its own
        log.info("task failed as recorded: %s", exc, extra=_ids(event))  # trace says nothing
        return Outcome(b"fatal", str(exc)[:MAX_ERROR_CHARS].encode(errors="replace"))
    except ConfigError as exc:  # a setting the agent needs is wrong: no retry can help, and
        # its message says all (a traceback per task would bury it)
        log.error("task failed for good: %s", exc, extra=_ids(event))
        return Outcome(b"fatal", _error_text(exc))
    except PermanentError as exc:
        log.warning("task failed for good: %r", exc, exc_info=exc, extra=_ids(event))
        return Outcome(b"fatal", _error_text(exc), traceback=format_traceback(exc))
    except Exception as exc:
        log.warning("task failed: %r", exc, exc_info=exc, extra=_ids(event))
        return Outcome(b"error", _error_text(exc), traceback=format_traceback(exc))
    try:
        if isinstance(result, WaitFor):
            return _await(result, event)
        if isinstance(result, Adjust):
            adjust = _adjust_request(result, max_result_bytes)
            return Outcome(b"adjust", _encode_result(result.result, max_result_bytes), adjust)
        if isinstance(result, Spawn):
            spawn = encode_spawn(result, event.task, agents, max_result_bytes)
            output = _encode_result(result.result, max_result_bytes)
            return Outcome(b"spawn", output, spawn=spawn)
        return Outcome(b"ok", _encode_result(result, max_result_bytes))
    except SpawnRefused as exc:
        log.warning("%s", exc, extra=_ids(event))
        return Outcome(b"fatal", str(exc).encode())
    except ValueError as exc:
        log.warning("task result cannot be stored: %s", exc, extra=_ids(event))
        return Outcome(b"fatal", str(exc).encode())


async def _call_within(agent: AgentFn, task: Task, timeout: float | None) -> Any:
    """The agent's result, or :class:`_TimedOut` once ``timeout`` passed.  A coroutine is
    cancelled then; a plain function's thread cannot be, so the timeout is reported only once
    the thread returned: until then the worker holds the task's slot and its claim, and the
    retry, scheduled only by this attempt's completion, cannot overlap it."""
    if timeout is None:
        return await call_agent(agent, task)
    if inspect.iscoroutinefunction(agent):
        return await _coroutine_within(agent, task, timeout)
    call = asyncio.ensure_future(call_agent(agent, task))
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            return await asyncio.shield(call)
    except TimeoutError:
        if not deadline.expired():
            raise
        await asyncio.wait([call])
        if not call.cancelled():
            call.exception()  # retrieved: the timeout is what the attempt reports
        raise _TimedOut from None
    finally:
        call.cancel()  # when this wait was cancelled (shutdown); a no-op once it is done


async def _coroutine_within(agent: AgentFn, task: Task, timeout: float) -> Any:
    """A coroutine agent, awaited in the caller's task (no task of its own per attempt: that
    cost a no-op task a tenth of the worker's CPU) and cancelled once ``timeout`` passed.
    Whatever it ends with after that, even a result, the timeout is what the attempt reports."""
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            result = await call_agent(agent, task)
    except Exception:
        if deadline.expired():
            raise _TimedOut from None
        raise
    if deadline.expired():
        raise _TimedOut
    return result


def _await(wait: WaitFor, event: TaskEvent) -> Outcome:
    """The task waits for a signal, or fails for good when the WaitFor is malformed."""
    if not isinstance(wait.signal, str) or not ID_PATTERN.fullmatch(wait.signal):
        return Outcome(b"fatal", f"WaitFor: invalid signal name {wait.signal!r}".encode())
    if not is_seconds(wait.timeout, allow_none=True):
        return Outcome(b"fatal", f"WaitFor: timeout must be seconds in (0, {MAX_TIMEOUT}]".encode())
    log.info("task waits for signal %r", wait.signal, extra=_ids(event))
    timeout_ms = 0 if wait.timeout is None else max(1, round(wait.timeout * 1000))
    return Outcome(b"await", wait.signal.encode(), awaits=timeout_ms)


def _retry_later(wait: RetryLater, event: TaskEvent) -> Outcome:
    """The task waits to be retried, or fails for good when the RetryLater is malformed."""
    refused = _malformed(wait)
    if refused is not None:
        return Outcome(b"fatal", f"RetryLater: {refused}".encode())
    log.info("task waits %ss: %s", wait.delay, wait.reason, extra=_ids(event))
    waits = (int(wait.delay * 1000), int(wait.give_up_after * 1000))
    return Outcome(b"wait", wait.reason[:MAX_ERROR_CHARS].encode(), wait=waits)


def _malformed(wait: RetryLater) -> str | None:
    """What is wrong with ``wait``'s arguments, if anything."""
    if not isinstance(wait.reason, str):
        return f"reason must be text, not {wait.reason!r}"
    if not (_is_number(wait.delay) and 0 <= wait.delay < math.inf):
        return "delay must be a number of seconds, 0 or more"
    if not (_is_number(wait.give_up_after) and 0 < wait.give_up_after < math.inf):
        return "give_up_after must be a number of seconds over 0"
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _encode_result(result: Any, cap: int) -> bytes:
    """The result as JSON, or ValueError saying why it cannot be stored."""
    try:
        output = dumps_payload(result)
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"result is not JSON-serialisable: {exc}") from None
    if len(output) > cap:
        raise ValueError(f"result too large: {len(output)} bytes, over the {cap}-byte cap")
    return output


def _adjust_request(adjust: Adjust, cap: int) -> AdjustRequest:
    if not isinstance(adjust.task, str) or not TASK_PATTERN.fullmatch(adjust.task):
        raise ValueError(f"Adjust names an invalid task id {adjust.task!r}")
    reason = str(adjust.reason)[:MAX_ERROR_CHARS]
    return AdjustRequest(adjust.task, reason, _encode_result(adjust.input, cap))


def _ids(event: TaskEvent) -> dict[str, str | int]:
    """The event's ids, as a log record's ``extra``."""
    return {
        "wf": event.workflow,
        "task": event.task,
        "attempt": event.attempt,
        "agent": event.agent,
    }


def _error_text(exc: BaseException) -> bytes:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:MAX_ERROR_CHARS].encode(errors="replace")
