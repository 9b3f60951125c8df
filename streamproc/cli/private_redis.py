"""A private redis-server for the verbs that run a whole engine in one process (``up``,
``demo``), so they work on a machine with no Redis set up."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import click
from redis.asyncio import Redis
from redis.exceptions import ConnectionError, TimeoutError

from streamproc.cli.verb import Context
from streamproc.config import RedisSettings, redacted
from streamproc.errors import ConfigError
from streamproc.testing.embedded import EmbeddedRedis


@contextlib.asynccontextmanager
async def embedded_default(ctx: Context) -> AsyncIterator[None]:
    """Start a private redis-server when no Redis URL was given and nothing answers at the
    default one.  A URL that was given must answer: a typo must not quietly run the engine
    on a throwaway Redis nobody else can see."""
    why = await unreachable(ctx.redis.url)
    if why is None:
        yield
        return
    if ctx.url_given:
        raise why
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


async def unreachable(url: str) -> ConnectionError | None:
    """Why nothing answers PING at ``url``, or None when something does."""
    probe = Redis.from_url(url, socket_connect_timeout=1)
    try:
        await probe.ping()
    except (ConnectionError, TimeoutError, OSError) as exc:
        return exc if isinstance(exc, ConnectionError) else ConnectionError(str(exc))
    finally:
        await probe.aclose()
    return None
