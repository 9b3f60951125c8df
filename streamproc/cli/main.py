"""``streamproc VERB``: daemons (up, worker, resolver) and actions (submit, status, show,
events, cancel, dead, demo).

Verb bodies stay thin: parse, build settings, call the library, exit non-zero on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import click
import orjson
from prometheus_client import start_http_server
from redis.asyncio import Redis
from redis.exceptions import ConnectionError, TimeoutError

from streamproc.cli.api import api
from streamproc.cli.dead import dead
from streamproc.cli.options import Context, F, common_options, connected, fail, redacted, verb
from streamproc.cli.replay import replay
from streamproc.client import Client
from streamproc.config import (
    AutoscaleSettings,
    ClientSettings,
    RedisSettings,
    ResolverSettings,
    WorkerSettings,
)
from streamproc.engine.daemon import Component, run_until_signalled
from streamproc.engine.resolver import Resolver
from streamproc.engine.worker import Worker
from streamproc.errors import ConfigError
from streamproc.ops import events as lifecycle
from streamproc.ops.poller import StreamPoller
from streamproc.ops.progress import follow_progress, render_history, render_state
from streamproc.ops.status import agent_stats, known_agents
from streamproc.outbound.cache import cache_stats
from streamproc.registry import registered
from streamproc.spec import WorkflowSpec
from streamproc.testing.embedded import EmbeddedRedis

DEMO_SPEC = Path(__file__).parents[1] / "examples" / "agentic.yaml"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Run agentic workflows (DAGs of agent tasks) on Redis Streams."""


main.add_command(api)
main.add_command(dead)
main.add_command(replay)


# -- daemons ---------------------------------------------------------------------------------


def worker_options(fn: F) -> F:
    fn = click.option(
        "--concurrency",
        type=click.IntRange(1),
        default=32,
        show_default=True,
        help="Tasks run at once by this process.",
    )(fn)
    return click.option(
        "--visibility-timeout",
        type=click.FloatRange(min=1),
        default=30.0,
        show_default=True,
        help="Seconds a task may go without a heartbeat before another worker takes it.",
    )(fn)


shutdown_option = click.option(
    "--shutdown-timeout",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="Seconds after SIGTERM before unfinished work is left pending for reclaim.",
)


metrics_option = click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    envvar="STREAMPROC_METRICS_PORT",
    help="Serve Prometheus metrics at http://127.0.0.1:PORT/metrics (--metrics-addr to widen).",
)
metrics_addr_option = click.option(
    "--metrics-addr", default="127.0.0.1", show_default=True, help="Address for --metrics-port."
)


def with_metrics(
    ctx: Context, components: list[Component], port: int | None, addr: str
) -> list[Component]:
    """The components, plus a poller of stream figures, with /metrics served, when asked."""
    if port is None:
        return components
    start_http_server(port, addr)
    click.echo(f"metrics on http://{addr}:{port}/metrics", err=True)
    return [*components, StreamPoller(ctx.redis, ctx.keyspace).run]


def worker_settings(
    ctx: Context,
    agents: tuple[str, ...],
    concurrency: int,
    visibility: float,
    autoscale: AutoscaleSettings | None = None,
) -> WorkerSettings:
    return WorkerSettings(
        agents=agents,
        keyspace=ctx.keyspace,
        concurrency=concurrency,
        visibility_timeout=visibility,
        heartbeat_interval=visibility / 6,
        claim_interval=min(5.0, visibility / 3),
        autoscale=autoscale,
    )


def autoscale_options(fn: F) -> F:
    options = [
        click.option(
            "--autoscale/--no-autoscale",
            envvar="STREAMPROC_AUTOSCALE",
            default=False,
            help="Size each agent's slots to its load, following one count shared in Redis.",
        ),
        click.option("--min-consumers", type=click.IntRange(0), default=1, show_default=True),
        click.option(
            "--max-consumers", type=click.IntRange(1), help="Fleet-wide cap (default: concurrency)."
        ),
        click.option(
            "--drain-target",
            type=click.FloatRange(min=0.1),
            default=30.0,
            show_default=True,
            help="Seconds in which the backlog should be cleared.",
        ),
        click.option(
            "--scale-cooldown",
            type=click.FloatRange(min=0),
            default=60.0,
            show_default=True,
            help="How long the need must stay low before scaling down.",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@main.command()
@common_options
@click.option(
    "--agent", "agent_names", required=True, help="Agent names to serve, comma separated."
)
@worker_options
@autoscale_options
@shutdown_option
@metrics_option
@metrics_addr_option
@verb
async def worker(
    ctx: Context,
    agent_names: str,
    concurrency: int,
    visibility_timeout: float,
    autoscale: bool,
    min_consumers: int,
    max_consumers: int | None,
    drain_target: float,
    scale_cooldown: float,
    shutdown_timeout: float,
    metrics_port: int | None,
    metrics_addr: str,
) -> int:
    """Serve tasks of the given agents."""
    names = tuple(name.strip() for name in agent_names.split(",") if name.strip())
    scaling = (
        AutoscaleSettings(min_consumers, max_consumers, drain_target, scale_cooldown)
        if autoscale
        else None
    )
    settings = worker_settings(ctx, names, concurrency, visibility_timeout, scaling)
    components = with_metrics(
        ctx, [Worker(ctx.redis, settings, registered()).run], metrics_port, metrics_addr
    )
    return await run_until_signalled(components, shutdown_timeout)


@main.command()
@common_options
@shutdown_option
@click.option(
    "--events-maxlen",
    type=click.IntRange(0),
    default=1_000_000,
    show_default=True,
    help="Keep about this many entries of each shard's events stream (MAXLEN ~).",
)
@click.option(
    "--events-max-age",
    type=click.FloatRange(min=0),
    help="Also drop events older than this many seconds (MINID).  Histories are not affected.",
)
@metrics_option
@metrics_addr_option
@verb
async def resolver(
    ctx: Context,
    shutdown_timeout: float,
    events_maxlen: int,
    events_max_age: float | None,
    metrics_port: int | None,
    metrics_addr: str,
) -> int:
    """Apply completions, resolve dependencies and publish ready tasks."""
    settings = ResolverSettings(
        keyspace=ctx.keyspace, events_maxlen=events_maxlen, events_max_age=events_max_age
    )
    components = with_metrics(ctx, [Resolver(ctx.redis, settings).run], metrics_port, metrics_addr)
    return await run_until_signalled(components, shutdown_timeout)


@main.command()
@common_options
@worker_options
@shutdown_option
@metrics_option
@metrics_addr_option
@verb
async def up(
    ctx: Context,
    concurrency: int,
    visibility_timeout: float,
    shutdown_timeout: float,
    metrics_port: int | None,
    metrics_addr: str,
) -> int:
    """Run the resolver and every registered agent in one process (a private redis-server is
    started when none answers at the URL)."""
    async with embedded_default(ctx):
        agents = registered()
        settings = worker_settings(ctx, tuple(sorted(agents)), concurrency, visibility_timeout)
        click.echo(f"serving {', '.join(settings.agents)} on {redacted(ctx.redis.url)}", err=True)
        components: list[Component] = [
            Resolver(ctx.redis, ResolverSettings(keyspace=ctx.keyspace)).run,
            Worker(ctx.redis, settings, agents).run,
        ]
        return await run_until_signalled(
            with_metrics(ctx, components, metrics_port, metrics_addr), shutdown_timeout
        )


@contextlib.asynccontextmanager
async def embedded_default(ctx: Context) -> AsyncIterator[None]:
    """Start a private redis-server when nothing answers at the configured URL."""
    probe = Redis.from_url(ctx.redis.url, socket_connect_timeout=1)
    try:
        await probe.ping()
        reachable = True
    except (ConnectionError, TimeoutError, OSError):
        reachable = False
    finally:
        await probe.aclose()
    if reachable:
        yield
        return
    if ctx.redis.cluster:
        raise ConfigError(
            f"no Redis Cluster answers at {redacted(ctx.redis.url)}, and the private "
            "redis-server started in its place would be a single node: start the cluster, "
            "or drop --cluster"
        )
    with EmbeddedRedis() as server:
        click.echo(
            f"no Redis at {redacted(ctx.redis.url)}: started a private redis-server at "
            f"{server.url} (data in {server.data_dir}, stopped on exit)",
            err=True,
        )
        ctx.redis = RedisSettings.from_url(server.url)
        yield


# -- actions ---------------------------------------------------------------------------------


@main.command()
@common_options
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--id", "workflow_id", help="Workflow id (submitting one id twice creates one workflow)."
)
@click.option(
    "--wait", is_flag=True, help="Show progress until it ends; exit 1 unless it completes."
)
@verb
async def submit(ctx: Context, file: Path, workflow_id: str | None, wait: bool) -> int:
    """Submit the workflow in FILE (YAML or JSON) and print its id."""
    spec = WorkflowSpec.load(file)
    async with Client(ctx.redis, ClientSettings(keyspace=ctx.keyspace)) as client:
        workflow_id = await client.submit(spec, workflow_id)
        click.echo(workflow_id)
        if not wait:
            return 0
        state = await follow_progress(client, workflow_id)
    return 0 if state.status == "completed" else 1


@main.command()
@common_options
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object per agent, then per search provider."
)
@verb
async def status(ctx: Context, as_json: bool) -> None:
    """Per agent: stream length, group lag, pending, consumers, dead letters; per search
    provider: cache hits, misses and upstream calls."""
    redis = ctx.redis.connect()
    try:
        names = sorted(set(await known_agents(redis, ctx.keyspace)) | set(registered()))
        stats = await agent_stats(redis, ctx.keyspace, names)
        cache = await cache_stats(redis, ctx.keyspace)
    finally:
        await redis.aclose()
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


@main.command()
@common_options
@click.argument("workflow_id")
@click.option("--json", "as_json", is_flag=True, help="The whole state as JSON.")
@click.option("--history", is_flag=True, help="Also every event of the run, in order.")
@verb
async def show(ctx: Context, workflow_id: str, as_json: bool, history: bool) -> None:
    """Each task's state, attempts, timings and a summary of its result; with --history,
    every event of the run in order, timed from its submission."""
    async with Client(ctx.redis, ClientSettings(keyspace=ctx.keyspace)) as client:
        state = await client.get(workflow_id)
        events = await client.history(workflow_id) if history else []
    if as_json:
        whole = {**state.to_dict(), **({"history": events} if history else {})}
        click.echo(orjson.dumps(whole, option=orjson.OPT_INDENT_2))
        return
    click.echo(render_state(state))
    if history:
        click.echo(render_history(events, state.created_ms))


@main.command()
@common_options
@click.option("--workflow", "workflow_id", help="Only this workflow's; exit after its end.")
@click.option(
    "--from",
    "start",
    metavar="ID|$",
    help="Start after this entry id: 0 for all kept, $ for new ones only "
    "(default: $, or 0 with --workflow).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event.")
@verb
async def events(ctx: Context, workflow_id: str | None, start: str | None, as_json: bool) -> None:
    """Follow lifecycle events of every shard, one line each: time, kind, workflow, task,
    attempt, details.  Ctrl-C ends it."""
    async with connected(ctx) as redis:
        if workflow_id is None:
            stream = lifecycle.tail(redis, ctx.keyspace, start or "$")
        else:
            stream = lifecycle.follow_workflow(redis, ctx.keyspace, workflow_id, start or "0")
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


@main.command()
@common_options
@click.argument("workflow_id")
@click.option("--reason", default="cancelled", show_default=True, help="Recorded as its reason.")
@verb
async def cancel(ctx: Context, workflow_id: str, reason: str) -> int:
    """Stop a running workflow: tasks not yet started are skipped; running ones finish, but
    nothing after them runs.  Exit 1 if it had already ended."""
    async with Client(ctx.redis, ClientSettings(keyspace=ctx.keyspace)) as client:
        if await client.cancel(workflow_id, reason):
            click.echo(f"workflow {workflow_id}: cancelled")
            return 0
        state = await client.get(workflow_id)
    fail(f"workflow {workflow_id!r} already {state.status}; nothing to cancel")
    return 1


@main.command()
@common_options
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=DEMO_SPEC,
    show_default=True,
    help="Workflow to run.",
)
@verb
async def demo(ctx: Context, file: Path) -> int:
    """Run the prototype's workflow end to end, twice (the second run shows the search cache):
    resolver and workers in this process, local search stand-ins when no API key is set."""
    # The project's agents, not the engine's.  mypy checks them as agents/, their folder: it
    # cannot see the name they are installed under through the editable install's import hook.
    from streamproc_agents.demo import run_demo  # type: ignore[import-not-found]

    async with embedded_default(ctx):
        return await run_demo(ctx.redis, ctx.keyspace, file)  # type: ignore[no-any-return]
