"""``streamproc VERB``: the command group, with its built-in verbs and those packages add."""

from __future__ import annotations

from typing import Any

import click

from streamproc.cli.agents import agents
from streamproc.cli.api import api
from streamproc.cli.daemons import resolver, up, worker
from streamproc.cli.dead import dead
from streamproc.cli.listing import list_
from streamproc.cli.plugins import VerbGroup
from streamproc.cli.replay import replay
from streamproc.cli.signals import signal_
from streamproc.cli.status import status
from streamproc.cli.verb import usage_errors_in_one_line
from streamproc.cli.workflows import cancel, events, show, submit

VERBS = [
    up,
    worker,
    resolver,
    submit,
    status,
    list_,
    show,
    events,
    cancel,
    signal_,
    dead,
    agents,
    api,
    replay,
]


class Streamproc(VerbGroup):
    """The ``streamproc`` group: its own options parsed, and then the verb's, with usage
    errors reported in one line (``usage_errors_in_one_line``)."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        with usage_errors_in_one_line():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        with usage_errors_in_one_line():
            return super().invoke(ctx)


@click.group(
    cls=Streamproc,
    commands=VERBS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
def main() -> None:
    """Run agentic workflows (DAGs of agent tasks) on Redis Streams."""
