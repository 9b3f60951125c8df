"""``streamproc submit|show|events|cancel``: one workflow's life, from the command line."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import click
import orjson

from streamproc.cli.options import EXISTING_FILE, StreamId, allow_agent_option, json_option
from streamproc.cli.verb import Context, connected, fail, verb
from streamproc.client import Client
from streamproc.config import ClientSettings
from streamproc.ops import events as lifecycle
from streamproc.ops import follow
from streamproc.ops.events import OUTPUT_MARK
from streamproc.ops.progress import (
    attempt_tracebacks,
    follow_progress,
    render_history,
    render_state,
)
from streamproc.ops.results import elided, task_result
from streamproc.ops.served import check_agents
from streamproc.registry import registered
from streamproc.spec.model import WorkflowSpec


@click.command()
@verb
@click.argument("file", type=EXISTING_FILE)
@click.option(
    "--id", "workflow_id", help="Workflow id (submitting one id twice creates one workflow)."
)
@click.option(
    "--wait", is_flag=True, help="Show progress until it ends; exit 1 unless it completes."
)
@allow_agent_option
async def submit(
    ctx: Context,
    file: Path,
    workflow_id: str | None,
    wait: bool,
    allowed_agents: tuple[str, ...],
) -> int:
    """Submit the workflow in FILE (YAML or JSON) and print its id.  Every agent it names
    must be registered here (--import), served by a running worker, or --allow-agent."""
    spec = WorkflowSpec.load(file)
    async with Client(ctx.redis, ClientSettings(keyspace=ctx.keyspace)) as client:
        await check_agents(client, spec, {*registered(), *allowed_agents})
        workflow_id = await client.submit(spec, workflow_id)
        click.echo(workflow_id)
        if not wait:
            return 0
        state = await follow_progress(client, workflow_id)
    return 0 if state.status == "completed" else 1


@click.command()
@verb
@click.argument("workflow_id")
@json_option("The state as JSON (results over 64 KiB elided: see --result).")
@click.option("--history", is_flag=True, help="Also every event of the run, in order.")
@click.option(
    "--result", "task_id", metavar="TASK", help="Only this task's result, whole, as JSON."
)
async def show(
    ctx: Context, workflow_id: str, as_json: bool, history: bool, task_id: str | None
) -> None:
    """Each task's state, attempts, timings and a summary of its result; with --history,
    every event of the run in order, timed from its submission."""
    async with Client(ctx.redis, ClientSettings(keyspace=ctx.keyspace)) as client:
        state = await client.get(workflow_id)
        events = await client.history(workflow_id) if history else []
    if task_id is not None:
        click.echo(orjson.dumps(task_result(state, task_id, workflow_id)))
        return
    if as_json:
        whole = {**elided(state.to_dict()), **({"history": events} if history else {})}
        click.echo(orjson.dumps(whole, option=orjson.OPT_INDENT_2))
        return
    click.echo(render_state(state))
    if history:
        click.echo(render_history(events, state.created_ms, attempt_tracebacks(state)))


@click.command()
@verb
@click.option(
    "--workflow",
    "workflow_id",
    help="Only this workflow's, with the chunks its agents emit (output); exit after its end.",
)
@click.option(
    "--from",
    "start",
    type=StreamId("$", output=True),
    metavar="ID|$",
    help="Start after this entry id: 0 for all kept, $ for new ones only "
    "(default: $, or 0 with --workflow; with it, an API event id ending in :out too).",
)
@json_option("One JSON object per event.")
async def events(ctx: Context, workflow_id: str | None, start: str | None, as_json: bool) -> None:
    """Follow lifecycle events of every shard, one line each: time, kind, workflow, task,
    attempt, details.  Ctrl-C ends it."""
    if workflow_id is None and start and start.endswith(OUTPUT_MARK):
        fail(f"--from: {start!r} is the position of a workflow's output: give --workflow", 2)
    async with connected(ctx) as redis:
        if workflow_id is None:
            stream = lifecycle.tail(redis, ctx.keyspace, start or "$")
        else:
            stream = follow.follow_workflow(redis, ctx.keyspace, workflow_id, start or "0")
        await until_interrupted(print_events(stream, as_json))


async def print_events(stream: AsyncIterator[lifecycle.Event], as_json: bool) -> None:
    async for event in stream:
        click.echo(orjson.dumps(event.to_dict()) if as_json else event.line())


async def until_interrupted(body: Coroutine[Any, Any, None]) -> None:
    """Run ``body`` until it returns or SIGINT/SIGTERM arrives: stopping a follower is how it
    is meant to end, not a failure, so the verb then exits 0."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(body)
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    try:
        await asyncio.wait([task])
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    if not task.cancelled():
        task.result()


@click.command()
@verb
@click.argument("workflow_id")
@click.option("--reason", default="cancelled", show_default=True, help="Recorded as its reason.")
async def cancel(ctx: Context, workflow_id: str, reason: str) -> int:
    """Stop a running workflow: tasks not yet started are skipped; running ones finish, but
    nothing after them runs.  Exit 1 if it had already ended."""
    async with Client(ctx.redis, ClientSettings(keyspace=ctx.keyspace)) as client:
        if await client.cancel(workflow_id, reason):
            click.echo(f"workflow {workflow_id}: cancelled")
            return 0
        state = await client.get(workflow_id)
    fail(f"workflow {workflow_id!r} already {state.status}; nothing to cancel", 1)
