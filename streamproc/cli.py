"""``streamproc VERB``: daemons (up, worker, resolver) and actions (submit, status, show, demo).

Verb bodies stay thin: parse, build settings, call the library, exit non-zero on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, ConnectionError, ResponseError, TimeoutError

from streamproc import logs
from streamproc.cache import cache_stats
from streamproc.client import Client
from streamproc.config import ClientSettings, RedisSettings, ResolverSettings, WorkerSettings
from streamproc.daemon import run_until_signalled
from streamproc.embedded import EmbeddedRedis
from streamproc.errors import StreamprocError
from streamproc.keys import Keyspace
from streamproc.progress import follow_progress, render_state
from streamproc.registry import registered
from streamproc.resolver import Resolver
from streamproc.spec import WorkflowSpec
from streamproc.status import agent_stats, known_agents
from streamproc.worker import Worker

F = TypeVar("F", bound=Callable[..., Any])
DEMO_SPEC = Path(__file__).parent / "examples" / "agentic.yaml"


def common_options(fn: F) -> F:
    """The options every verb takes, each backed by an environment variable."""
    options = [
        click.option(
            "--redis-url",
            envvar="STREAMPROC_REDIS_URL",
            default="redis://127.0.0.1:6379/0",
            show_default=True,
            help="Redis URL (redis://, rediss:// or unix://).  [env: STREAMPROC_REDIS_URL]",
        ),
        click.option(
            "--namespace",
            envvar="STREAMPROC_NAMESPACE",
            default="sp",
            show_default=True,
            help="Key namespace.  [env: STREAMPROC_NAMESPACE]",
        ),
        click.option(
            "--shards",
            envvar="STREAMPROC_SHARDS",
            type=click.IntRange(1),
            default=1,
            show_default=True,
            help="Stream shards.  [env: STREAMPROC_SHARDS]",
        ),
        click.option(
            "--import",
            "imports",
            multiple=True,
            metavar="MODULE",
            help="Import MODULE first (it registers agents with @agent).",
        ),
        click.option("-v", "--verbose", count=True, help="-v info, -vv debug."),
        click.option(
            "--log-format",
            type=click.Choice(["json", "text"]),
            envvar="STREAMPROC_LOG_FORMAT",
            default="json",
            show_default=True,
            help="[env: STREAMPROC_LOG_FORMAT]",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


class Context:
    """What the common options resolve to."""

    def __init__(
        self,
        redis_url: str,
        namespace: str,
        shards: int,
        imports: tuple[str, ...],
        verbose: int,
        log_format: str,
    ) -> None:
        logs.configure(verbose, log_format == "json")
        for module in imports:
            importlib.import_module(module)
        self.redis = RedisSettings.from_url(redis_url)
        self.keyspace = Keyspace(namespace, shards)


def verb(fn: Callable[..., Coroutine[Any, Any, int | None]]) -> Callable[..., None]:
    """Run an async verb body; turn expected failures into a one-line error and exit code."""

    @functools.wraps(fn)
    def wrapper(
        redis_url: str,
        namespace: str,
        shards: int,
        imports: tuple[str, ...],
        verbose: int,
        log_format: str,
        **kwargs: Any,
    ) -> None:
        try:
            ctx = Context(redis_url, namespace, shards, imports, verbose, log_format)
            code = asyncio.run(fn(ctx, **kwargs))
        except (ConnectionError, TimeoutError, OSError) as exc:
            fail(f"cannot reach Redis at {redis_url}: {exc}")
        except AuthenticationError as exc:
            fail(f"Redis refused the credentials: {exc}")
        except (StreamprocError, ResponseError, ModuleNotFoundError) as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            code = 130
        sys.exit(code or 0)

    return wrapper


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2 if "Redis" in message else 1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Run agentic workflows (DAGs of agent tasks) on Redis Streams."""


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


def worker_settings(
    ctx: Context, agents: tuple[str, ...], concurrency: int, visibility: float
) -> WorkerSettings:
    return WorkerSettings(
        agents=agents,
        keyspace=ctx.keyspace,
        concurrency=concurrency,
        visibility_timeout=visibility,
        heartbeat_interval=visibility / 6,
        claim_interval=min(5.0, visibility / 3),
    )


@main.command()
@common_options
@click.option(
    "--agent", "agent_names", required=True, help="Agent names to serve, comma separated."
)
@worker_options
@shutdown_option
@verb
async def worker(
    ctx: Context,
    agent_names: str,
    concurrency: int,
    visibility_timeout: float,
    shutdown_timeout: float,
) -> int:
    """Serve tasks of the given agents."""
    names = tuple(name.strip() for name in agent_names.split(",") if name.strip())
    settings = worker_settings(ctx, names, concurrency, visibility_timeout)
    return await run_until_signalled(
        [Worker(ctx.redis, settings, registered()).run], shutdown_timeout
    )


@main.command()
@common_options
@shutdown_option
@verb
async def resolver(ctx: Context, shutdown_timeout: float) -> int:
    """Apply completions, resolve dependencies and publish ready tasks."""
    resolver = Resolver(ctx.redis, ResolverSettings(keyspace=ctx.keyspace))
    return await run_until_signalled([resolver.run], shutdown_timeout)


@main.command()
@common_options
@worker_options
@shutdown_option
@verb
async def up(
    ctx: Context, concurrency: int, visibility_timeout: float, shutdown_timeout: float
) -> int:
    """Run the resolver and every registered agent in one process (a private redis-server is
    started when none answers at the URL)."""
    async with embedded_default(ctx):
        agents = registered()
        settings = worker_settings(ctx, tuple(sorted(agents)), concurrency, visibility_timeout)
        click.echo(f"serving {', '.join(settings.agents)} on {ctx.redis.url}", err=True)
        return await run_until_signalled(
            [
                Resolver(ctx.redis, ResolverSettings(keyspace=ctx.keyspace)).run,
                Worker(ctx.redis, settings, agents).run,
            ],
            shutdown_timeout,
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
    with EmbeddedRedis() as server:
        click.echo(
            f"no Redis at {ctx.redis.url}: started a private redis-server at {server.url} "
            f"(data in {server.data_dir}, stopped on exit)",
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
@click.option("--wait", is_flag=True, help="Show progress until it ends; exit 1 if it fails.")
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
    click.echo(f"{'agent':<16}{'length':>8}{'lag':>8}{'pending':>9}{'consumers':>11}{'dead':>7}")
    for row in stats:
        click.echo(
            f"{row.agent:<16}{row.length:>8}{row.lag:>8}{row.pending:>9}{row.consumers:>11}{row.dead_letters:>7}"
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
@verb
async def show(ctx: Context, workflow_id: str, as_json: bool) -> None:
    """Each task's state, attempts, timings and a summary of its result."""
    async with Client(ctx.redis, ClientSettings(keyspace=ctx.keyspace)) as client:
        state = await client.get(workflow_id)
    if as_json:
        click.echo(orjson.dumps(state.to_dict(), option=orjson.OPT_INDENT_2))
        return
    click.echo(render_state(state))


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
    from agents.demo import run_demo  # the project's agents, not the engine's

    async with embedded_default(ctx):
        return await run_demo(ctx.redis, ctx.keyspace, file)
