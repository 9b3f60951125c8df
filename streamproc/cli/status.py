"""``streamproc status``: how each agent's streams and the search cache are doing."""

from __future__ import annotations

import click
import orjson

from streamproc.cli.options import json_option
from streamproc.cli.verb import Context, connected, verb
from streamproc.ops.status import agent_stats, known_agents
from streamproc.outbound.cache import cache_stats
from streamproc.registry import registered


@click.command()
@verb
@json_option("One JSON object per agent, then per search provider.")
async def status(ctx: Context, as_json: bool) -> None:
    """Per agent: stream length, group lag, pending, consumers, dead letters; per search
    provider: cache hits, misses and upstream calls.  Consumers are members of the agent's
    groups, one per worker process and shard however many tasks each runs at once; desired
    is the autoscaler's fleet-wide count of task slots, so the two differ by design."""
    async with connected(ctx) as redis:
        names = sorted(set(await known_agents(redis, ctx.keyspace)) | set(registered()))
        stats = await agent_stats(redis, ctx.keyspace, names)
        cache = await cache_stats(redis, ctx.keyspace)
    if as_json:
        for row in stats:
            click.echo(orjson.dumps(row.to_dict()))
        for provider, counters in sorted(cache.items()):
            click.echo(orjson.dumps({"provider": provider, **counters}))
        return
    header = f"{'agent':<16}{'length':>8}{'lag':>8}{'pending':>9}{'consumers':>11}{'dead':>7}"
    click.echo(header + f"{'desired':>9}")
    for row in stats:
        desired = "-" if row.desired is None else str(row.desired)
        click.echo(
            f"{row.agent:<16}{row.length:>8}{row.lag:>8}{row.pending:>9}{row.consumers:>11}"
            f"{row.dead_letters:>7}{desired:>9}"
        )
    if cache:
        click.echo(f"\n{'search cache':<16}{'hit':>8}{'miss':>8}{'upstream':>9}")
        for provider, c in sorted(cache.items()):
            click.echo(
                f"{provider:<16}{c.get('hit', 0):>8}{c.get('miss', 0):>8}{c.get('upstream', 0):>9}"
            )
