"""``streamproc VERB``: the command group, with its built-in verbs and those packages add."""

from __future__ import annotations

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


@click.group(
    cls=VerbGroup,
    commands=VERBS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
def main() -> None:
    """Run agentic workflows (DAGs of agent tasks) on Redis Streams."""
