"""The options more than one verb takes, each declared once here and attached where needed:
the common ones (every verb, through ``verb``), ``--json``, and the daemons' options."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from streamproc.config import RedisSettings
from streamproc.ops.events import OUTPUT_MARK
from streamproc.store.ids import ID_PATTERN, ID_RULE
from streamproc.store.keys import MAX_SHARDS

F = TypeVar("F", bound=Callable[..., Any])

URL_VARIABLE = "STREAMPROC_REDIS_URL"
EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


class Seconds(click.FloatRange):
    """A duration in a range, and a finite one: a comparison lets NaN through any range, and
    an infinite timeout fails later, inside the library it is handed to."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        seconds = super().convert(value, param, ctx)
        if not math.isfinite(seconds):
            self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        return seconds


class StreamId(click.ParamType[str, str]):
    """A stream entry id, ``<ms>-<seq>`` or ``<ms>`` alone, or one of the special ids the
    option takes (``$``, ``-``, ``+``): checked here, so a typo is named with its option
    rather than coming back from Redis as "Invalid stream ID"."""

    name = "stream id"
    FORM = re.compile(r"[0-9]+(-[0-9]+)?")

    def __init__(self, *specials: str, output: bool = False) -> None:
        self.specials = specials
        self.output = output  # an output event's position (its id and OUTPUT_MARK) too

    def convert(self, value: str, param: click.Parameter | None, ctx: click.Context | None) -> str:
        entry_id = value.removesuffix(OUTPUT_MARK) if self.output else value
        if value in self.specials or self.FORM.fullmatch(entry_id):
            return value
        self.fail(f"{value!r} is not a stream id (<ms>-<seq>, e.g. 1700000000000-0)", param, ctx)


COMMON = [
    click.option(
        "--redis-url",
        envvar=URL_VARIABLE,
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
        type=click.IntRange(1, MAX_SHARDS),
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
        type=Seconds(min=0, min_open=True),
        envvar="STREAMPROC_SOCKET_TIMEOUT",
        default=RedisSettings.socket_timeout,
        show_default=True,
        help="Seconds a Redis call may wait for a reply before its connection is dropped "
        "as hung (a blackholed network); above the daemons' 2 s blocking reads.  "
        "[env: STREAMPROC_SOCKET_TIMEOUT]",
    ),
]
"""Every verb's options, each backed by an environment variable; ``Context`` reads them."""


def attach(options: Sequence[Callable[[F], F]], fn: F) -> F:
    """``fn`` with ``options``, listed in this order in its help."""
    for option in reversed(options):
        fn = option(fn)
    return fn


def json_option(help: str) -> Callable[[F], F]:
    """``--json``: the verb prints JSON instead of a table; ``help`` says what it prints."""
    return click.option("--json", "as_json", is_flag=True, help=help)


class AgentName(click.ParamType[str, str]):
    """An agent's name, checked here so a typo is named with its option."""

    name = "agent"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not ID_PATTERN.fullmatch(value):
            self.fail(f"{value!r} is not an agent name: use {ID_RULE}", param, ctx)
        return value


def agent_names(
    ctx: click.Context, param: click.Parameter, given: str | tuple[str, ...] | None
) -> tuple[str, ...]:
    """An option's agent names, comma separated (and repeated, for a repeatable option),
    each checked: an empty one is refused, as the typo it is."""
    values = () if given is None else (given,) if isinstance(given, str) else given
    names = [name.strip() for value in values for name in value.split(",")]
    return tuple(AgentName().convert(name, param, ctx) for name in names)


allow_agent_option = click.option(
    "--allow-agent",
    "allowed_agents",
    multiple=True,
    metavar="NAME",
    envvar="STREAMPROC_ALLOW_AGENTS",
    callback=agent_names,
    help="Accept specs naming agent NAME though it is not registered here (--import) and no "
    "worker serves it yet; repeatable.  [env: STREAMPROC_ALLOW_AGENTS, separated by spaces "
    "or commas]",
)
"""Submitting verbs refuse agents that would never run; this names those served elsewhere."""


def worker_options(fn: F) -> F:
    """How many tasks a worker process runs at once, and when it loses one to another."""
    return attach(
        [
            click.option(
                "--visibility-timeout",
                type=Seconds(min=1),
                default=30.0,
                show_default=True,
                help="Seconds a task may go without a heartbeat before another worker takes it.",
            ),
            click.option(
                "--concurrency",
                type=click.IntRange(1),
                default=32,
                show_default=True,
                help="Tasks run at once by this process.",
            ),
        ],
        fn,
    )


shutdown_option = click.option(
    "--shutdown-timeout",
    type=Seconds(min=1),
    default=30.0,
    show_default=True,
    help="Seconds after SIGTERM before unfinished work is left pending for reclaim.",
)


def metrics_options(fn: F) -> F:
    """Where a daemon serves its Prometheus metrics, if anywhere."""
    return attach(
        [
            click.option(
                "--metrics-port",
                type=click.IntRange(1, 65535),
                envvar="STREAMPROC_METRICS_PORT",
                help="Serve Prometheus metrics at http://127.0.0.1:PORT/metrics "
                "(--metrics-addr to widen).",
            ),
            click.option(
                "--metrics-addr",
                default="127.0.0.1",
                show_default=True,
                help="Address for --metrics-port.",
            ),
        ],
        fn,
    )
