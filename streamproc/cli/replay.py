"""``streamproc replay VERB``: run a past workflow again, compare runs, print a stream range."""

from __future__ import annotations

from typing import Any, cast

import click
import orjson
from redis.asyncio import Redis

from streamproc.cli.options import StreamId, json_option
from streamproc.cli.verb import Context, connected, fail, verb
from streamproc.client import Client
from streamproc.config import ClientSettings, WorkerSettings
from streamproc.engine.inprocess import running_engine
from streamproc.errors import ConfigError, Conflict, NotFound, SpecError, StreamprocError
from streamproc.ops import replay as rp
from streamproc.ops import retention
from streamproc.ops.progress import render_state
from streamproc.registry import REPLAY_AGENT, registered
from streamproc.store.codec import Entry, decode_fields, entry_order
from streamproc.store.entries import EntryField as EF
from streamproc.store.state import WorkflowState


@click.group()
def replay() -> None:
    """Replay for debugging: re-run a past workflow, diff two runs, print a stream range."""


@replay.command("run")
@verb
@click.argument("workflow_id")
@click.option(
    "--from-recorded",
    is_flag=True,
    help="Feed recorded outcomes (the default): no agent or API call; the final state, "
    "failures and cancellation included, must equal the original.",
)
@click.option("--live", is_flag=True, help="Run every agent again.")
@click.option(
    "--from-task",
    help="Reuse recorded results outside TASK's downstream; run TASK, its downstream and "
    "tasks with no recorded result live.",
)
async def run(
    ctx: Context, workflow_id: str, from_recorded: bool, live: bool, from_task: str | None
) -> int:
    """Re-run WORKFLOW_ID as a new workflow (resolver and workers in this process) and report
    how its final state differs from the original's; exit 1 on a difference when replaying
    from recorded outcomes, where none is allowed."""
    if from_recorded + live + (from_task is not None) > 1:
        fail("give at most one of --from-recorded, --live and --from-task", 2)
    async with Client(ctx.redis, ClientSettings(keyspace=ctx.keyspace)) as client:
        try:
            recording = await rp.load_recorded(client, workflow_id)
            recorded, spec = recording.state, recording.spec
            kept_live = set() if from_task is None else rp.live_tasks(recorded, from_task)
            plan = spec if live else rp.replay_spec(recorded, spec, kept_live)
        except (NotFound, SpecError, Conflict) as exc:
            fail(str(exc), 2)
        recorder = rp.RecordedAgent(recording, kept_live)
        agents = {**registered(), REPLAY_AGENT: recorder.run}
        unserved = sorted({t.agent for t in plan.tasks if t.agent} - agents.keys())
        if unserved:  # no worker here would ever run them: the replay would never end
            fail(
                f"cannot run agent {', '.join(unserved)} here: give the module that registers "
                "it with --import",
                2,
            )
        strict = not live and from_task is None
        slots = WorkerSettings.concurrency + rp.held_slots(recorded)
        async with running_engine(ctx.redis, ctx.keyspace, agents, slots):
            new_id = await client.submit(plan)
            click.echo(f"replaying {workflow_id} as {new_id}", err=True)
            if strict:
                await rp.end_like(client, new_id, recorded, recorder)
            again = await client.wait(new_id)
            if strict:
                await rp.drop_dead_letters(client, new_id)
    click.echo(render_state(again))
    differences = rp.diff(recorded, again)
    print_diff(differences, workflow_id, new_id)
    return 1 if strict and differences else 0


@replay.command("diff")
@verb
@click.argument("before")
@click.argument("after")
@json_option("One JSON object per difference.")
async def diff(ctx: Context, before: str, after: str, as_json: bool) -> int:
    """Compare two runs task by task (status, state, result, error); exit 1 if they differ,
    2 on an error (an unknown id, say), so a script can tell the two apart."""
    async with Client(ctx.redis, ClientSettings(keyspace=ctx.keyspace)) as client:
        try:
            states: list[WorkflowState] = [await client.get(before), await client.get(after)]
        except StreamprocError as exc:
            fail(str(exc), 2)
    differences = rp.diff(*states)
    if as_json:
        for d in differences:
            click.echo(orjson.dumps(d.__dict__, default=str))
    else:
        print_diff(differences, before, after)
    return 1 if differences else 0


@replay.command("stream")
@verb
@click.option("--agent", help="The agent's task stream (default: the completions stream).")
@click.option("--shard", type=int, default=0, show_default=True)
@click.option(
    "--start",
    type=StreamId("-"),
    default="-",
    show_default=True,
    metavar="ID",
    help="First entry id or ms time.",
)
@click.option(
    "--end",
    type=StreamId("+"),
    default="+",
    show_default=True,
    metavar="ID",
    help="Last entry id or ms time.",
)
@click.option("--workflow", help="Only this workflow's entries.")
@click.option(
    "--group",
    help="Also create this debug consumer group (named debug-...), positioned so it "
    "re-delivers from --start; the resolver drops it once idle (--debug-group-idle).",
)
@click.option("--drop-group", help="Remove this debug group (debug-...) instead of printing.")
async def stream(
    ctx: Context,
    agent: str | None,
    shard: int,
    start: str,
    end: str,
    workflow: str | None,
    group: str | None,
    drop_group: str | None,
) -> int:
    """Print a range of a stream as JSON lines without touching the live consumer groups;
    say what retention already trimmed of the range.  With --group, a separate debug
    group re-delivers the stream from --start to whoever reads it (XREADGROUP GROUP NAME)."""
    if drop_group and (group or workflow):
        fail(f"--drop-group removes a group: it takes no --{'group' if group else 'workflow'}", 2)
    if start != "-" and end != "+" and entry_order(start) > _last_of(end):
        fail(f"--start {start} is after --end {end}: no entry lies between", 2)
    key = ctx.keyspace.tasks(shard, agent) if agent else ctx.keyspace.done(shard)
    async with connected(ctx) as redis:
        if not await redis.exists(key):
            fail(f"no stream {key}", 2)
        try:
            if drop_group:
                await _drop(redis, key, drop_group)
                return 0
            gone = await retention.trimmed(redis, key)
            entries = cast(list[Entry], await redis.xrange(key, start, end))
            if group:
                await retention.create_debug_group(redis, key, group, _just_before(start))
                click.echo(f"debug group {group} on {key} re-delivers from {start}", err=True)
        except (ConfigError, SpecError) as exc:
            fail(str(exc), 2)
    if gone and gone.covers(start):
        click.echo(gone.notice(), err=True)
    wanted = workflow.encode() if workflow else None
    shown = [e for e in entries if wanted is None or e[1].get(EF.WF.key) == wanted]
    for entry_id, fields in shown:
        click.echo(orjson.dumps({"id": entry_id.decode(), **decode_fields(fields)}))
    if not shown:
        of = f" of workflow {workflow}" if workflow else ""
        click.echo(f"no entry{of} in {key} from {start} to {end}", err=True)
    return 0


def _last_of(end: str) -> tuple[int, float]:
    """Where a range's end lies: ``<ms>`` alone takes every entry of that millisecond."""
    ms, seq = entry_order(end)
    return (ms, seq) if "-" in end else (ms, float("inf"))


async def _drop(redis: Redis, key: str, name: str) -> None:
    if not await retention.drop_debug_group(redis, key, name):
        fail(f"no debug group {name} on {key}", 2)
    click.echo(f"dropped debug group {name} from {key}", err=True)


def _just_before(start: str) -> str:
    """The group position that makes ``start`` the next entry delivered."""
    if start == "-":
        return "0-0"
    ms, seq = entry_order(start)
    if seq > 0:
        return f"{ms}-{seq - 1}"
    return f"{ms - 1}-18446744073709551615" if ms > 0 else "0-0"


def print_diff(differences: list[rp.TaskDiff], before: str, after: str) -> None:
    if not differences:
        click.echo(f"no difference between {before} and {after}")
        return
    click.echo(f"{len(differences)} difference(s) between {before} and {after}:")
    for d in differences:
        where = f"task {d.task}" if d.task else "workflow"
        click.echo(f"  {where} {d.field}: {_show(d.before)} -> {_show(d.after)}")


def _show(value: Any) -> str:
    text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= 80 else text[:77] + "..."
