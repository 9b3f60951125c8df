"""``streamproc agents prune``: forget the agent names nothing needs any more (the resolver
does it after every trim pass too)."""

from __future__ import annotations

import click

from streamproc.cli.verb import Context, connected, verb
from streamproc.store.agents import prune_agents


@click.group()
def agents() -> None:
    """Agent names the shards record."""


@agents.command()
@verb
async def prune(ctx: Context) -> None:
    """Forget each agent that no running workflow names, with no dead letter, no task waiting
    or pending and no worker serving it: its name and its empty streams go (a submit naming
    it again brings them back)."""
    async with connected(ctx) as redis:
        by_shard = await prune_agents(redis, ctx.keyspace)
    forgotten = sorted({name for names in by_shard.values() for name in names})
    for name in forgotten:
        click.echo(f"forgot {name}")
    if not forgotten:
        click.echo("no agent to forget")
