"""Agents for tests and trials: ``echo`` and ``sleep``.

Not on the ``streamproc.agents`` entry points, so a production install does not serve them: a
process that wants them imports this module (``streamproc worker --import
streamproc.testing.agents --agent echo``)."""

from __future__ import annotations

import asyncio
from typing import Any

from streamproc import Task, agent


@agent("echo")
async def echo(task: Task) -> Any:
    """Return the input, with the results of the tasks it needed when there are any."""
    if task.deps:
        return {"input": task.input, "deps": task.deps}
    return task.input


@agent("sleep")
async def sleep(task: Task) -> Any:
    """Sleep ``input["seconds"]`` (default 0.1), then echo the input."""
    seconds = task.input.get("seconds", 0.1) if isinstance(task.input, dict) else 0.1
    await asyncio.sleep(float(seconds))
    return {"slept": seconds, "task": task.id}
