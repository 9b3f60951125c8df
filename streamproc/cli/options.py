"""What every ``streamproc`` verb shares: the common options, what they resolve to, and the
wrapper that runs an async verb body and turns expected failures into a one-line error."""

from __future__ import annotations

import asyncio
import functools
import importlib
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, ConnectionError, ResponseError, TimeoutError

from streamproc.cli import logs
from streamproc.config import RedisSettings
from streamproc.errors import StreamprocError
from streamproc.store.keys import Keyspace

F = TypeVar("F", bound=Callable[..., Any])


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
            "--cluster",
            is_flag=True,
            envvar="STREAMPROC_REDIS_CLUSTER",
            help="The Redis URL names a node of a Redis Cluster.  [env: STREAMPROC_REDIS_CLUSTER]",
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
        click.option(
            "--insecure-dev",
            is_flag=True,
            envvar="STREAMPROC_INSECURE_DEV",
            help="Allow a rediss:// URL that turns certificate checks off (development only).",
        ),
        click.option(
            "--socket-timeout",
            type=click.FloatRange(min=0, min_open=True),
            envvar="STREAMPROC_SOCKET_TIMEOUT",
            default=RedisSettings.socket_timeout,
            show_default=True,
            help="Seconds a Redis call may wait for a reply before its connection is dropped "
            "as hung (a blackholed network); above the daemons' 2 s blocking reads.  "
            "[env: STREAMPROC_SOCKET_TIMEOUT]",
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
        insecure_dev: bool = False,
        cluster: bool = False,
        socket_timeout: float = RedisSettings.socket_timeout,
    ) -> None:
        logs.configure(verbose, log_format == "json")
        for module in imports:
            importlib.import_module(module)
        settings = RedisSettings.from_url(redis_url, insecure=insecure_dev, cluster=cluster)
        self.redis = replace(settings, socket_timeout=socket_timeout)
        self.keyspace = Keyspace(namespace, shards)


@asynccontextmanager
async def connected(ctx: Context) -> AsyncIterator[Redis]:
    """A Redis connection for one verb body, closed after it."""
    redis = ctx.redis.connect()
    try:
        yield redis
    finally:
        await redis.aclose()


def redacted(url: str) -> str:
    """``url`` with its password, if any, replaced: URLs end up in messages and logs."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    user = f"{parts.username}:***@" if parts.username else "***@"
    return parts._replace(netloc=user + parts.netloc.rsplit("@", 1)[1]).geturl()


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
        insecure_dev: bool,
        cluster: bool,
        socket_timeout: float,
        **kwargs: Any,
    ) -> None:
        try:
            ctx = Context(
                redis_url,
                namespace,
                shards,
                imports,
                verbose,
                log_format,
                insecure_dev,
                cluster,
                socket_timeout,
            )
            code = asyncio.run(fn(ctx, **kwargs))
        except AuthenticationError as exc:  # a ConnectionError too, so caught first
            fail(f"Redis refused the credentials: {exc}")
        except (ConnectionError, TimeoutError, OSError) as exc:
            fail(f"cannot reach Redis at {redacted(redis_url)}: {exc}")
        except (StreamprocError, ResponseError, ModuleNotFoundError) as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            code = 130
        sys.exit(code or 0)

    return wrapper


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2 if "Redis" in message else 1)
