"""Showing a workflow to a person: its events as they happen, and its tasks as a table."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click
import orjson

from streamproc.client import Client
from streamproc.ops.events import with_start
from streamproc.store.entries import EntryField as EF
from streamproc.store.entries import EventKind
from streamproc.store.state import WorkflowState


def as_json(result: Any) -> str:
    return orjson.dumps(result).decode()


async def follow_progress(client: Client, workflow_id: str) -> WorkflowState:
    """Print each event as it arrives, then how the workflow ended, in one line."""
    state = await print_events(client, workflow_id)
    click.echo(f"workflow {workflow_id}: {state.status}{why(state)}", err=True)
    return state


async def print_events(client: Client, workflow_id: str) -> WorkflowState:
    """Print each event of the workflow (from its first: it was just submitted, and its
    first tasks may have run already) timed from now by the moment it happened, and each chunk
    an agent emits (as JSON, so it stays on its line); a task_done that carries its task's
    start (``began``) is printed after a task_started line of its own, so every task shows
    its start; return the final state."""
    started_ms = time.time() * 1000
    async for followed in client.follow(workflow_id, start="0"):
        for event in with_start(followed):
            at = float(event.get(EF.AT) or time.time() * 1000)
            elapsed = max(0.0, (at - started_ms) / 1000)
            detail = event.get(EF.ERROR) or event.get(EF.REASON) or event.get(EF.TASKS) or ""
            if event[EF.KIND] == EventKind.OUTPUT:
                superseded = " (superseded)" if event.get("superseded") else ""
                detail = as_json(event.get(EF.CHUNK)) + superseded
            kind, task = event[EF.KIND], event.get(EF.TASK, "")
            click.echo(f"{elapsed:7.2f}s  {kind:<14} {task:<12} {detail}".rstrip(), err=True)
    return await client.get(workflow_id)


def render_state(
    state: WorkflowState, describe: Callable[[Any], str] = as_json, width: int = 60
) -> str:
    """A table of the tasks; ``describe`` turns a task's result into its summary text."""
    took = f" in {(state.ended_ms - state.created_ms) / 1000:.2f}s" if state.ended_ms else ""
    name = f" {state.name}" if state.name else ""
    lines = [
        f"workflow {state.id}{name}: {state.status}{took}{why(state)}",
        f"  {'task':<12}{'agent':<12}{'state':<11}{'att':>4}{'ran ms':>8}  result",
    ]
    for t in state.tasks:
        ran = f"{t.ended_ms - t.began_ms}" if t.began_ms and t.ended_ms else "-"
        summary = {
            "failed": t.error,
            "done": describe(t.result) if t.state == "done" else "",
            "running": f"on {t.consumer}",
            "awaiting": f"for signal {t.wait_for}",
        }.get(t.state, "")
        summary = " ".join(summary.split())
        summary = summary if len(summary) <= width else summary[: width - 3] + "..."
        lines.append(f"  {t.id:<12}{t.agent:<12}{t.state:<11}{t.attempt:>4}{ran:>8}  {summary}")
    kept = [f"  signal {s['name']} ({s['id']}, {s['size']} bytes) kept" for s in state.signals]
    return "\n".join(lines + grown(state) + kept)


def why(state: WorkflowState) -> str:
    """``: REASON``, or nothing when there is none or it only repeats the status (as
    ``cancel``'s default reason, "cancelled", does)."""
    return "" if state.reason in ("", state.status) else f": {state.reason}"


def grown(state: WorkflowState) -> list[str]:
    """Who added which tasks at run time: ``plan spawned q0 q1``, ``search mapped plan into
    search[0] search[1]``."""
    added: dict[str, list[str]] = {}
    for t in state.tasks:
        if t.spawner:
            added.setdefault(t.spawner, []).append(t.id)
    maps = {t.id: t.map for t in state.tasks if t.map}
    return [
        f"  {by} mapped {maps[by]} into {' '.join(ids)}"
        if by in maps
        else f"  {by} spawned {' '.join(ids)}"
        for by, ids in added.items()
    ]


ENVELOPE = frozenset({"id", EF.V, EF.KIND, EF.WF, EF.TASK, EF.ATT, EF.AT})


def render_history(
    events: list[dict[str, str]], created_ms: int, tracebacks: dict[tuple[str, str], str]
) -> str:
    """One line per event: seconds since submission, kind, task, attempt, detail; below a
    failure, its attempt's traceback (``tracebacks``, by task and attempt) when it has one."""
    lines = ["  history:"]
    for e in events:
        at = (float(e.get(EF.AT) or created_ms) - created_ms) / 1000
        detail = " ".join(
            f"{k}={(float(v) - created_ms) / 1000:.3f}s" if k == EF.BEGAN else f"{k}={v}"
            for k, v in e.items()
            if k not in ENVELOPE
        )
        task = f"{e.get(EF.TASK, '')}#{e[EF.ATT]}" if e.get(EF.TASK) else ""
        lines.append(f"  {at:8.3f}s  {e['kind']:<14} {task:<14} {detail}".rstrip())
        traceback = tracebacks.get((e.get(EF.TASK, ""), e.get(EF.ATT, "")))
        if e[EF.KIND] == EventKind.TASK_FAILED and traceback:
            lines.append(indented(traceback, 6))
    return "\n".join(lines)


def attempt_tracebacks(state: WorkflowState) -> dict[tuple[str, str], str]:
    """The traceback of each failed attempt that has one, by task id and attempt number."""
    return {
        (t.id, str(h.get("attempt"))): str(h["traceback"])
        for t in state.tasks
        for h in t.history
        if h.get("traceback")
    }


def indented(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.rstrip("\n").split("\n"))
