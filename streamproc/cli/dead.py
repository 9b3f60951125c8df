"""``streamproc dead VERB``: list, show, requeue and purge dead-lettered tasks."""

from __future__ import annotations

import click
import orjson

from streamproc.cli.options import json_option
from streamproc.cli.verb import Context, connected, fail, verb
from streamproc.ops import deadletters

agent_option = click.option("--agent", required=True, help="The agent whose dead letters to use.")


@click.group()
def dead() -> None:
    """Dead-lettered tasks: list, show, requeue (resumes the workflow), purge."""


@dead.command("list")
@verb
@click.option("--agent", help="Only this agent's (default: every agent).")
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
    click.echo(
        f"{'id':<17} {'agent':<12} {'workflow':<24} {'task':<12}{'att':>4}{'dlv':>4}  reason"
    )
    for r in rows:
        click.echo(
            f"{r['id']:<17} {r['agent']:<12} {r['workflow'] or '-':<24} {r['task'] or '-':<12}"
            f"{r['attempt'] or '-':>4}{r['deliveries'] or '-':>4}  {r['reason']}"
        )


@dead.command()
@verb
@click.argument("entry_id")
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
    for name, value in shown.items():
        if isinstance(value, list | dict):
            value = orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
            value = value.replace("\n", "\n" + " " * 13)
        click.echo(f"{name + ':':<12} {value}")


@dead.command()
@verb
@click.argument("entry_id", required=False)
@agent_option
@click.option("--all", "every", is_flag=True, help="Every dead letter of the agent.")
async def requeue(ctx: Context, entry_id: str | None, agent: str, every: bool) -> int:
    """Run a dead-lettered task again, after fixing its cause: its workflow resumes, skipped
    tasks wait again, and the entry is deleted."""
    if every == (entry_id is not None):
        fail("give either ENTRY_ID or --all", 1)
    async with connected(ctx) as redis:
        if entry_id is not None:
            dead_letter = await deadletters.requeue(redis, ctx.keyspace, agent, entry_id)
            click.echo(f"requeued {entry_id}: task {dead_letter.task} of {dead_letter.workflow}")
            return 0
        outcomes = await deadletters.requeue_all(redis, ctx.keyspace, agent)
    for entry, refused in outcomes:
        if refused is None:
            click.echo(f"requeued {entry.entry_id}: task {entry.task} of {entry.workflow}")
        else:
            click.echo(f"error: {refused}", err=True)
    return 1 if any(refused for _, refused in outcomes) else 0


@dead.command()
@verb
@agent_option
@click.option("--before", metavar="ID", help="Only entries with a smaller id (ms or ms-seq).")
@click.option("--yes", is_flag=True, help="Really delete them: there is no undo.")
async def purge(ctx: Context, agent: str, before: str | None, yes: bool) -> None:
    """Delete dead letters of an agent for good."""
    if not yes:
        fail("purge deletes dead letters for good; add --yes to do it", 1)
    async with connected(ctx) as redis:
        deleted = await deadletters.purge(redis, ctx.keyspace, agent, before)
    click.echo(f"deleted {deleted} dead letter(s) of {agent}")
