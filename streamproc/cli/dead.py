"""``streamproc dead VERB``: list, show, requeue and purge dead-lettered tasks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
import orjson

from streamproc.cli.options import AgentName, StreamId, json_option
from streamproc.cli.tables import Column, table
from streamproc.cli.verb import Context, connected, fail, verb
from streamproc.ops import deadletters
from streamproc.ops.progress import indented

agent_option = click.option(
    "--agent", type=AgentName(), required=True, help="The agent whose dead letters to use."
)


@click.group()
def dead() -> None:
    """Dead-lettered tasks: list, show, requeue (resumes the workflow), purge."""


@dead.command("list")
@verb
@click.option("--agent", type=AgentName(), help="Only this agent's (default: every agent).")
@json_option("One JSON object per entry.")
async def list_(ctx: Context, agent: str | None, as_json: bool) -> None:
    """Per agent, oldest first: entry id, workflow, task, attempt, deliveries, when, reason."""
    async with connected(ctx) as redis:
        agents = [agent] if agent else await deadletters.dead_agents(redis, ctx.keyspace)
        rows = []
        for name in agents:
            rows += [d.summary() for d in await deadletters.list_dead(redis, ctx.keyspace, name)]
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(row))
        return
    for line in table(COLUMNS, rows, "reason"):
        click.echo(line)


# Each ``dead list`` column before the reason.
COLUMNS = [
    Column("id", "id", "<"),
    Column("agent", "agent", "<"),
    Column("workflow", "workflow", "<"),
    Column("task", "task", "<"),
    Column("att", "attempt", ">"),
    Column("dlv", "deliveries", ">"),
]


@dead.command()
@verb
@click.argument("entry_id", type=StreamId())
@agent_option
@json_option("The entry as one JSON object.")
async def show(ctx: Context, entry_id: str, agent: str, as_json: bool) -> None:
    """Every field of one dead letter, its error and attempt history included."""
    async with connected(ctx) as redis:
        entry = await deadletters.find_dead(redis, ctx.keyspace, agent, entry_id)
    shown = entry.to_dict()
    if as_json:
        click.echo(orjson.dumps(shown, option=orjson.OPT_INDENT_2))
        return
    history = shown.get("history")
    attempts = [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []
    if attempts:  # the tracebacks follow, as lines of their own
        shown["history"] = [{k: v for k, v in h.items() if k != "traceback"} for h in attempts]
    for name, value in dated(shown).items():
        if isinstance(value, list | dict):
            value = orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
            value = value.replace("\n", "\n" + " " * 13)
        click.echo(f"{name + ':':<12} {value}")
    for attempt in attempts:
        if attempt.get("traceback"):
            click.echo(f"traceback of attempt {attempt.get('attempt')}:")
            click.echo(indented(str(attempt["traceback"]), 2))


def dated(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with each ``at`` (Unix ms, a number or, in the history Lua wrote, digits),
    its own and its history's, as ISO-8601 UTC: for people; ``--json`` keeps the raw value."""
    out = {k: iso_utc(int(v)) if k == "at" and str(v).isdigit() else v for k, v in fields.items()}
    if isinstance(out.get("history"), list):
        out["history"] = [dated(h) if isinstance(h, dict) else h for h in out["history"]]
    return out


def iso_utc(ms: int) -> str:
    when = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    return when.replace("+00:00", "Z")


@dead.command()
@verb
@click.argument("entry_id", type=StreamId(), required=False)
@agent_option
@click.option("--all", "every", is_flag=True, help="Every dead letter of the agent.")
async def requeue(ctx: Context, entry_id: str | None, agent: str, every: bool) -> int:
    """Run a dead-lettered task again, after fixing its cause: its workflow resumes, skipped
    tasks wait again, and the entry is deleted."""
    if every == (entry_id is not None):
        fail("give either ENTRY_ID or --all", 2)
    async with connected(ctx) as redis:
        if entry_id is not None:
            dead_letter = await deadletters.requeue(redis, ctx.keyspace, agent, entry_id)
            click.echo(f"requeued {entry_id}: task {dead_letter.task} of {dead_letter.workflow}")
            return 0
        outcomes = await deadletters.requeue_all(redis, ctx.keyspace, agent)
    if not outcomes:
        click.echo(f"no dead letters of {agent} to requeue", err=True)
    for entry, refused in outcomes:
        if refused is None:
            click.echo(f"requeued {entry.entry_id}: task {entry.task} of {entry.workflow}")
        else:
            click.echo(f"error: {refused}", err=True)
    return 1 if any(refused for _, refused in outcomes) else 0


@dead.command()
@verb
@click.argument("entry_id", type=StreamId(), required=False)
@agent_option
@click.option(
    "--before", type=StreamId(), metavar="ID", help="Only entries with a smaller id (ms or ms-seq)."
)
@click.option("--yes", is_flag=True, help="Really delete them: there is no undo.")
async def purge(
    ctx: Context, entry_id: str | None, agent: str, before: str | None, yes: bool
) -> None:
    """Delete dead letters of an agent for good: the one ENTRY_ID names, or all (those
    before --before)."""
    if entry_id is not None and before is not None:
        fail("give either ENTRY_ID or --before", 2)
    if not yes:
        fail("purge deletes dead letters for good; add --yes to do it", 2)
    async with connected(ctx) as redis:
        if entry_id is not None:
            await deadletters.purge_one(redis, ctx.keyspace, agent, entry_id)
            click.echo(f"deleted dead letter {entry_id} of {agent}")
            return
        deleted = await deadletters.purge(redis, ctx.keyspace, agent, before)
    click.echo(f"deleted {deleted} dead letter(s) of {agent}")
