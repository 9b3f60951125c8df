"""The agent the wait and signal tests share: it waits for a signal, then reports it."""

from __future__ import annotations

from typing import Any

from streamproc import Task, WaitFor, agent

RUNS: list[tuple[str, int]] = []  # (workflow, attempt) of every run of asker, in this process


@agent("asker")
async def asker(task: Task) -> Any:
    """Wait for the signal input['signal'] (for input['timeout'] seconds, if given), raised or,
    with input['returned'], returned; once resumed, return the signal's payload."""
    RUNS.append((task.workflow, task.attempt))
    if not task.resumed:
        wait = WaitFor(task.input["signal"], task.input.get("timeout"))
        if task.input.get("returned"):
            return wait
        raise wait
    return {"signal": task.signal, "attempt": task.attempt}
