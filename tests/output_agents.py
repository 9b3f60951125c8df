"""Agents and helpers the streamed-output tests share: agents that emit, the engine that
serves them, and the workflows they run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from streamproc import Keyspace, PermanentError, Task, agent
from streamproc.errors import EmitRefused
from streamproc.outbound.llm import LLMClient
from streamproc.store.chunks import MAX_CHUNK_BYTES, MAX_CHUNKS
from tests.conftest import Engine

GATES: dict[str, asyncio.Event] = {}
LLM: list[LLMClient] = []  # the client the poet agent asks, set by its test
CHUNKS = ["Hel", "lo", {"tokens": 2}]


def gate(workflow_id: str) -> asyncio.Event:
    return GATES.setdefault(workflow_id, asyncio.Event())


@agent("talker")
async def talker(task: Task) -> Any:
    """Emit input['chunks'] (after the test opens the gate, when input['gated']), and return
    (when input['hold'], once the test opens the gate ``<wf>:end``)."""
    if task.input.get("gated"):
        await gate(task.workflow).wait()
    for chunk in task.input["chunks"]:
        await task.emit(chunk)
    if task.input.get("hold"):
        await gate(f"{task.workflow}:end").wait()
    return "said"


@agent("sync_talker")
def sync_talker(task: Task) -> Any:
    """A plain function agent, in a thread: emits with emit_sync."""
    for chunk in task.input["chunks"]:
        task.emit_sync(chunk)
    return "said"


@agent("second_try")
async def second_try(task: Task) -> Any:
    """Emit a chunk naming the attempt; fail the first attempt."""
    await task.emit(f"attempt {task.attempt}")
    if task.attempt == 1:
        raise RuntimeError("first attempt fails")
    return task.attempt


@agent("overflow")
async def overflow(task: Task) -> Any:
    """Try the bounds: a chunk too big, one that is no JSON, then one chunk too many."""
    refusals = []
    for bad in ("x" * MAX_CHUNK_BYTES, {1, 2}):
        try:
            await task.emit(bad)
        except EmitRefused as exc:
            refusals.append(str(exc))
    for n in range(MAX_CHUNKS):
        await task.emit(n)
    try:
        await task.emit("one too many")
    except EmitRefused as exc:
        refusals.append(str(exc))
    return refusals


MENDED: set[str] = set()  # workflows whose mendable task works now


@agent("mendable")
async def mendable(task: Task) -> Any:
    """Emit, then fail for good until the test mends the workflow."""
    await task.emit(f"try {task.attempt}")
    if task.workflow not in MENDED:
        raise PermanentError("broken until mended")
    return "mended"


@agent("poet")
async def poet(task: Task) -> Any:
    """Ask the LLM, streaming its answer to the task's output."""
    return await LLM[0].ask(task.input["prompt"], emit=task.emit)


@asynccontextmanager
async def talking_engine(redis_url: str, keyspace: Keyspace) -> AsyncIterator[Engine]:
    """A resolver and a worker serving the agents above."""
    running = Engine(redis_url, keyspace)
    running.start_resolver()
    running.start_worker(("talker", "sync_talker", "second_try", "overflow", "poet", "mendable"))
    try:
        yield running
    finally:
        await running.stop()


def spec(agent_name: str, **task_input: Any) -> dict[str, Any]:
    return {
        "tasks": [
            {"id": "say", "agent": agent_name, "input": task_input, "retries": 1},
            {"id": "then", "agent": "talker", "input": {"chunks": []}, "needs": ["say"]},
        ]
    }


def outputs(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(task, att, seq, format, chunk, superseded) of each output event."""
    return [
        (e["task"], e["att"], e["seq"], e["format"], e["chunk"], e["superseded"])
        for e in events
        if e["kind"] == "output"
    ]
