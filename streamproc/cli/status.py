"""``streamproc status``: how each agent's streams and the search cache are doing."""

from __future__ import annotations

import click
import orjson

from streamproc.cli.options import json_option
from streamproc.cli.verb import Context, connected, verb
from streamproc.ops.retention import all_debug_groups
from streamproc.ops.status import agent_stats, declared_waits, known_agents
from streamproc.outbound.cache import cache_stats
from streamproc.registry import registered
from streamproc.transport.groups import DebugGroup


@click.command()
@verb
@json_option("One JSON object per agent, then per search provider.")
async def status(ctx: Context, as_json: bool) -> None:
    """Per agent: stream length, group lag, pending, consumers, dead letters, tasks awaiting a
    signal (and how many declared waits await one); per search
    provider: cache hits, misses and upstream calls; the debug groups of each stream.  Consumers
    are members of the agent's groups, one per worker process and shard however many tasks each
    runs at once; desired is the autoscaler's fleet-wide count of task slots, so the two differ
    by design."""
    async with connected(ctx) as redis:
        names = sorted(set(await known_agents(redis, ctx.keyspace)) | set(registered()))
        stats = await agent_stats(redis, ctx.keyspace, names)
        waits = await declared_waits(redis, ctx.keyspace)
        cache = await cache_stats(redis, ctx.keyspace)
        debug = await all_debug_groups(redis, ctx.keyspace, names)
    if as_json:
        for row in stats:
            click.echo(orjson.dumps(row.to_dict()))
        if waits:
            click.echo(orjson.dumps({"declared_waits_awaiting": waits}))
        for provider, counters in sorted(cache.items()):
            click.echo(orjson.dumps({"provider": provider, **counters}))
        for group in debug:
            click.echo(orjson.dumps(_debug_dict(group)))
        return
    header = f"{'agent':<16}{'length':>8}{'lag':>8}{'pending':>9}{'consumers':>11}{'dead':>7}"
    click.echo(header + f"{'awaiting':>10}{'desired':>9}")
    for row in stats:
        desired = "-" if row.desired is None else str(row.desired)
        click.echo(
            f"{row.agent:<16}{row.length:>8}{row.lag:>8}{row.pending:>9}{row.consumers:>11}"
            f"{row.dead_letters:>7}{row.awaiting:>10}{desired:>9}"
        )
    if waits:
        click.echo(f"{waits} declared wait{'s' if waits != 1 else ''} awaiting a signal")
    for row in stats:
        if row.unserved:
            click.echo(f"no consumer serves {row.agent}: {row.lag + row.pending} tasks waiting")
    if cache:
        click.echo(f"\n{'search cache':<16}{'hit':>8}{'miss':>8}{'upstream':>9}")
        for provider, c in sorted(cache.items()):
            click.echo(
                f"{provider:<16}{c.get('hit', 0):>8}{c.get('miss', 0):>8}{c.get('upstream', 0):>9}"
            )
    if debug:
        click.echo(f"\n{'debug group':<24}{'stream':<32}{'pending':>9}{'lag':>8}{'idle':>10}")
        for g in debug:
            idle = "-" if g.idle is None else f"{g.idle:.0f}s"
            lag = "-" if g.lag is None else str(g.lag)
            click.echo(f"{g.name:<24}{g.stream:<32}{g.pending:>9}{lag:>8}{idle:>10}")


def _debug_dict(group: DebugGroup) -> dict[str, object]:
    return {
        "debug_group": group.name,
        "stream": group.stream,
        "pending": group.pending,
        "lag": group.lag,
        "idle_s": group.idle,
    }
