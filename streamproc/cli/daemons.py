"""``streamproc up|worker|resolver``: the daemons, each until SIGTERM/SIGINT."""

from __future__ import annotations

import click
from click.core import ParameterSource
from prometheus_client import start_http_server

from streamproc.cli.options import (
    F,
    Seconds,
    agent_names,
    attach,
    metrics_options,
    shutdown_option,
    worker_options,
)
from streamproc.cli.private_redis import embedded_default
from streamproc.cli.verb import Context, fail, verb
from streamproc.config import AutoscaleSettings, ResolverSettings, WorkerSettings, redacted
from streamproc.engine.daemon import Component, run_until_signalled
from streamproc.engine.resolver import Resolver
from streamproc.engine.worker import Worker
from streamproc.errors import CannotListen
from streamproc.ops.poller import StreamPoller
from streamproc.registry import imported, registered


def autoscale_options(fn: F) -> F:
    """Whether and how a worker follows the fleet-wide consumer count (``worker`` only)."""
    return attach(
        [
            click.option(
                "--autoscale/--no-autoscale",
                envvar="STREAMPROC_AUTOSCALE",
                default=False,
                help="Size each agent's slots to its load, following one count shared in Redis.",
            ),
            click.option("--min-consumers", type=click.IntRange(0), default=1, show_default=True),
            click.option(
                "--max-consumers",
                type=click.IntRange(1),
                help="Fleet-wide cap (default: concurrency).",
            ),
            click.option(
                "--drain-target",
                type=Seconds(min=0.1),
                default=30.0,
                show_default=True,
                help="Seconds in which the backlog should be cleared.",
            ),
            click.option(
                "--scale-cooldown",
                type=Seconds(min=0),
                default=60.0,
                show_default=True,
                help="How long the need must stay low before scaling down.",
            ),
        ],
        fn,
    )


def with_metrics(
    ctx: Context, components: list[Component], port: int | None, addr: str, poll: bool = False
) -> list[Component]:
    """The components with /metrics served, when asked; with ``poll``, plus the poller of
    the fleet's stream and cache figures, which only the resolver (and ``up``) exports, so
    that summing over processes counts them once."""
    if port is None:
        source = click.get_current_context().get_parameter_source("metrics_addr")
        if source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            fail("--metrics-addr: give --metrics-port too (without it, nothing is served)", 2)
        return components
    try:
        start_http_server(port, addr)
    except (OSError, UnicodeError) as exc:
        raise CannotListen("metrics", addr, port, exc) from None
    shown = f"[{addr}]" if ":" in addr else addr
    click.echo(f"metrics on http://{shown}:{port}/metrics", err=True)
    return [*components, StreamPoller(ctx.redis, ctx.keyspace).run] if poll else components


def check_autoscale_options(autoscale: bool, low: int, high: int | None) -> None:
    """Refuse scaling options that would be ignored (no --autoscale) or contradict."""
    given = click.get_current_context().get_parameter_source
    named = [
        f"--{name.replace('_', '-')}"
        for name in ("min_consumers", "max_consumers", "drain_target", "scale_cooldown")
        if given(name) is ParameterSource.COMMANDLINE
    ]
    if named and not autoscale:
        fail(f"{', '.join(named)}: for --autoscale only (without it, nothing scales)", 2)
    if high is not None and high < low:
        fail(f"--max-consumers ({high}) is under --min-consumers ({low})", 2)


def worker_settings(
    ctx: Context,
    agents: tuple[str, ...],
    concurrency: int,
    visibility: float,
    autoscale: AutoscaleSettings | None = None,
    apply_completions: bool = True,
) -> WorkerSettings:
    return WorkerSettings(
        agents=agents,
        keyspace=ctx.keyspace,
        concurrency=concurrency,
        visibility_timeout=visibility,
        heartbeat_interval=visibility / 6,
        claim_interval=min(5.0, visibility / 3),
        autoscale=autoscale,
        apply_completions=apply_completions,
    )


@click.command()
@verb
@click.option(
    "--agent",
    "agent_names",
    required=True,
    callback=agent_names,
    help="Agent names to serve, comma separated.",
)
@worker_options
@click.option(
    "--via-resolver",
    is_flag=True,
    help="Report completions to the completion stream for the resolver to apply (kept there "
    "for replay stream) instead of applying them here.",
)
@autoscale_options
@shutdown_option
@metrics_options
async def worker(
    ctx: Context,
    agent_names: tuple[str, ...],
    concurrency: int,
    visibility_timeout: float,
    via_resolver: bool,
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
    check_autoscale_options(autoscale, min_consumers, max_consumers)
    scaling = (
        AutoscaleSettings(min_consumers, max_consumers, drain_target, scale_cooldown)
        if autoscale
        else None
    )
    settings = worker_settings(
        ctx, agent_names, concurrency, visibility_timeout, scaling, not via_resolver
    )
    components = with_metrics(
        ctx, [Worker(ctx.redis, settings, registered()).run], metrics_port, metrics_addr
    )
    return await run_until_signalled(components, shutdown_timeout)


def retention_options(fn: F) -> F:
    """How long task and completion streams keep acknowledged entries, and debug groups
    live unused: the resolver's trimming, for ``resolver`` and ``up``."""
    fn = click.option(
        "--debug-group-idle",
        type=Seconds(min=0),
        default=ResolverSettings.debug_group_idle,
        show_default=True,
        help="Drop a debug group (replay stream --group) unused for this many seconds.",
    )(fn)
    return click.option(
        "--stream-retention",
        type=Seconds(min=0),
        default=ResolverSettings.stream_retention,
        show_default=True,
        help="Keep task and completion entries this many seconds after every group "
        "acknowledged them, for replay stream (0: trim them at once).",
    )(fn)


@click.command()
@verb
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
    type=Seconds(min=0),
    help="Also drop events older than this many seconds (MINID).  Histories are not affected.",
)
@retention_options
@metrics_options
async def resolver(
    ctx: Context,
    shutdown_timeout: float,
    events_maxlen: int,
    events_max_age: float | None,
    stream_retention: float,
    debug_group_idle: float,
    metrics_port: int | None,
    metrics_addr: str,
) -> int:
    """Apply completions, resolve dependencies and publish ready tasks."""
    settings = ResolverSettings(
        keyspace=ctx.keyspace,
        events_maxlen=events_maxlen,
        events_max_age=events_max_age,
        stream_retention=stream_retention,
        debug_group_idle=debug_group_idle,
    )
    resolving: list[Component] = [Resolver(ctx.redis, settings).run]
    components = with_metrics(ctx, resolving, metrics_port, metrics_addr, poll=True)
    return await run_until_signalled(components, shutdown_timeout)


@click.command()
@verb
@click.option(
    "--agent",
    "agent_names",
    callback=agent_names,
    help="Also serve these agents, comma separated (an installed package's, say).",
)
@worker_options
@shutdown_option
@retention_options
@metrics_options
async def up(
    ctx: Context,
    agent_names: tuple[str, ...],
    concurrency: int,
    visibility_timeout: float,
    shutdown_timeout: float,
    stream_retention: float,
    debug_group_idle: float,
    metrics_port: int | None,
    metrics_addr: str,
) -> int:
    """Run the resolver and a worker in one process (a private redis-server is started when
    none answers at the URL).  The worker serves the agents the --import modules registered
    and those named with --agent; with neither, every installed agent (entry points)."""
    async with embedded_default(ctx):
        names = {*imported(), *agent_names}
        if not names:
            names = set(registered())
            click.echo("no --import or --agent: serving every installed agent", err=True)
        settings = worker_settings(ctx, tuple(sorted(names)), concurrency, visibility_timeout)
        components: list[Component] = [
            Resolver(
                ctx.redis,
                ResolverSettings(
                    keyspace=ctx.keyspace,
                    stream_retention=stream_retention,
                    debug_group_idle=debug_group_idle,
                ),
            ).run,
            Worker(ctx.redis, settings, registered()).run,
        ]
        components = with_metrics(ctx, components, metrics_port, metrics_addr, poll=True)
        click.echo(f"serving {', '.join(settings.agents)} on {redacted(ctx.redis.url)}", err=True)
        return await run_until_signalled(components, shutdown_timeout)
