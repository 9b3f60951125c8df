"""``streamproc api``: serve the HTTP API until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import functools
import os
from pathlib import Path

import click

from streamproc.cli.options import EXISTING_FILE, allow_agent_option
from streamproc.cli.verb import Context, verb
from streamproc.client import Client
from streamproc.config import ClientSettings
from streamproc.engine.daemon import run_until_signalled
from streamproc.errors import ConfigError
from streamproc.http.app import serve
from streamproc.http.auth import ApiSettings
from streamproc.http.tokens import file_tokens, parse_tokens
from streamproc.registry import registered

TOKENS_VARIABLE = "STREAMPROC_API_TOKENS"
SIGNING_KEY_VARIABLE = "STREAMPROC_API_SIGNING_KEY"
CORS_VARIABLE = "STREAMPROC_API_CORS_ORIGINS"
MIN_SIGNING_KEY = 32


@click.command()
@verb
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8080,
    show_default=True,
    help="Port to listen on.",
)
@click.option(
    "--tokens-file",
    type=EXISTING_FILE,
    help="Bearer tokens, one a line as TOKEN [scopes=read+submit+admin] [tenant=NAME] (added "
    f"to those in {TOKENS_VARIABLE}, comma separated). A bare token has every scope and sees "
    "every tenant. Without any, only a loopback host is allowed, and requests need no token.",
)
@allow_agent_option
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    help="A browser origin (scheme://host[:port]) whose pages may call the API; repeatable, "
    f"added to those in {CORS_VARIABLE} (comma separated). None: no CORS at all.",
)
@click.option(
    "--max-streams-per-token",
    type=click.IntRange(1),
    default=ApiSettings.max_streams_per_token,
    show_default=True,
    envvar="STREAMPROC_API_MAX_STREAMS_PER_TOKEN",
    help="Event streams one token may hold open at once; past it, 429.",
)
@click.option(
    "--max-streams-per-tenant",
    type=click.IntRange(1),
    default=ApiSettings.max_streams_per_tenant,
    show_default=True,
    envvar="STREAMPROC_API_MAX_STREAMS_PER_TENANT",
    help="Event streams one tenant's tokens may hold open at once; past it, 429.",
)
@click.option(
    "--max-workflows-per-tenant",
    type=click.IntRange(0),
    default=ApiSettings.max_workflows_per_tenant,
    show_default=True,
    envvar="STREAMPROC_API_MAX_WORKFLOWS_PER_TENANT",
    help="Workflows one tenant may have in flight; past it, 429. 0: no limit.",
)
@click.option(
    "--max-bytes-per-tenant",
    type=click.IntRange(0),
    default=ApiSettings.max_bytes_per_tenant,
    show_default=True,
    envvar="STREAMPROC_API_MAX_BYTES_PER_TENANT",
    help="Bytes of inputs and results one tenant's workflows may keep stored (until their "
    "retention passes); past it, 429. 0: no limit.",
)
async def api(
    ctx: Context,
    host: str,
    port: int,
    tokens_file: Path | None,
    cors_origins: tuple[str, ...],
    max_streams_per_token: int,
    max_streams_per_tenant: int,
    max_workflows_per_tenant: int,
    max_bytes_per_tenant: int,
    allowed_agents: tuple[str, ...],
) -> int:
    """Serve the HTTP API: workflows, their events, agents and dead letters.  A submitted
    spec may name the agents registered here (--import), those a running worker serves, and
    those given with --allow-agent."""
    tokens = parse_tokens(os.environ.get(TOKENS_VARIABLE, ""), ",", TOKENS_VARIABLE)
    if tokens_file is not None:
        raw = await asyncio.to_thread(tokens_file.read_bytes)
        tokens += file_tokens(raw, str(tokens_file))
    key = os.environ.get(SIGNING_KEY_VARIABLE)  # shared by API processes behind one address
    if key is not None and len(key) < MIN_SIGNING_KEY:
        raise ConfigError(f"{SIGNING_KEY_VARIABLE} must be at least {MIN_SIGNING_KEY} characters")
    signing = {} if key is None else {"signing_key": key.encode()}
    listed = os.environ.get(CORS_VARIABLE, "").split(",")
    settings = ApiSettings.with_credentials(
        tokens,
        host=host,
        port=port,
        cors_origins=(*cors_origins, *(o.strip() for o in listed if o.strip())),
        max_streams_per_token=max_streams_per_token,
        max_streams_per_tenant=max_streams_per_tenant,
        max_workflows_per_tenant=max_workflows_per_tenant,
        max_bytes_per_tenant=max_bytes_per_tenant,
        **signing,
    )
    settings.check_bind()
    access = f"{len(settings.credentials)} token(s)" if tokens else "no token: loopback only"
    shown = f"[{host}]" if ":" in host else host
    announce = functools.partial(
        click.echo, f"serving the HTTP API on http://{shown}:{port} ({access})", err=True
    )
    async with Client(ctx.redis, ClientSettings(keyspace=ctx.keyspace)) as client:
        agents = {*registered(), *allowed_agents}
        server = functools.partial(serve, client, settings, listening=announce, registry=agents)
        return await run_until_signalled([server])
