"""``streamproc demo``: the prototype's workflow end to end, then once more to show what the
search cache saves.  Resolver and worker run in this process; with no search API key set,
local stand-ins that speak each provider's wire format answer the searches.

The verb reaches the CLI through the entry-point group ``streamproc.commands``: the engine's
CLI does not import the project's agents."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
from redis.asyncio import Redis

import streamproc
from streamproc import Client, ClientSettings, Keyspace, RedisSettings, TaskSpec, WorkflowSpec
from streamproc.cli.options import EXISTING_FILE
from streamproc.cli.private_redis import embedded_default
from streamproc.cli.verb import Context, verb
from streamproc.config import redacted
from streamproc.engine.daemon import run_until_signalled
from streamproc.engine.inprocess import running_engine
from streamproc.errors import CannotListen, ConfigError
from streamproc.http.app import serve
from streamproc.http.auth import ApiSettings
from streamproc.ops.poller import StreamPoller
from streamproc.ops.progress import print_events, render_state
from streamproc.outbound.cache import cache_stats
from streamproc.outbound.llm import LLMSettings
from streamproc.outbound.providers import SearchSettings
from streamproc.registry import registered
from streamproc.testing.fakes import Fakes

from .agentic import COMPLETE_AT, outline

STAND_IN_LATENCY = 0.3  # seconds per search answer, about what the real APIs take
DEMO_SPEC = Path(streamproc.__file__).parent / "examples" / "agentic.yaml"
APPROVAL = "approval"  # the signal the approval gate of --approve waits for


@click.command()
@verb
@click.option(
    "--file",
    "file",
    type=EXISTING_FILE,
    default=DEMO_SPEC,
    show_default=True,
    help="Workflow to run.",
)
@click.option(
    "--ui",
    is_flag=True,
    help="After the runs, keep the engine, the HTTP API and its dashboard up (loopback, no "
    "token) until Ctrl-C, and print the dashboard's URL of the second run.",
)
@click.option(
    "--ui-port",
    type=click.IntRange(1, 65535),
    default=8080,
    show_default=True,
    help="The dashboard's port, with --ui.",
)
@click.option(
    "--approve",
    is_flag=True,
    help="Each run waits for an approval before its validation; the command that approves "
    "it is printed.",
)
async def demo(ctx: Context, file: Path, ui: bool, ui_port: int, approve: bool) -> int:
    """Run the prototype's workflow end to end, twice (the second run shows the search cache):
    resolver and workers in this process, local search stand-ins when no API key is set."""
    if ui:
        check_free(ui_port)
    async with embedded_default(ctx):
        return await run_demo(ctx.redis, ctx.keyspace, file, ui_port if ui else None, approve)


async def run_demo(
    redis: RedisSettings,
    keyspace: Keyspace,
    spec_path: Path,
    ui_port: int | None = None,
    approve: bool = False,
) -> int:
    """Run the workflow twice; the exit code is 0 when both runs complete.  With ``ui_port``,
    then serve the dashboard there until Ctrl-C; with ``approve``, each run waits for an
    approval before its validation."""
    spec = WorkflowSpec.load(spec_path)
    hint = None
    if approve:
        spec = with_approval(spec)
        hint = f"{APPROVAL} --redis-url {redacted(redis.url)} --namespace {keyspace.namespace}"
    agents = registered()
    LLMSettings.from_env(os.environ)  # a half-set or unusable model is refused here, not per task
    async with contextlib.AsyncExitStack() as stack:
        if not SearchSettings.from_env(os.environ).configured():
            fakes = await stack.enter_async_context(Fakes(latency=STAND_IN_LATENCY))
            os.environ.update(fakes.search_env())
            click.echo(
                "no search API key set: local stand-ins for "
                f"{', '.join(fakes.search)} answer instead ({STAND_IN_LATENCY}s per search)",
                err=True,
            )
        async with (
            running_engine(redis, keyspace, agents),
            Client(redis, ClientSettings(keyspace=keyspace), agents) as client,
        ):
            first = await run_once(client, spec, "first run", hint)
            second = await run_once(client, spec, "second run (search cache warm)", hint)
            click.echo(f"\n{summary(first, second, keyspace.namespace)}")
            served = (
                0 if ui_port is None else await dashboard(client, redis, ui_port, second.workflow)
            )
    return 0 if first.completed and second.completed and served == 0 else 1


async def dashboard(client: Client, redis: RedisSettings, port: int, workflow_id: str) -> int:
    """Serve the API and its dashboard on loopback, without tokens, until Ctrl-C; the exit
    code.  The stream poller runs too, so the dashboard's Search page has the cache's totals
    (this process runs the search agents: their calls and limiter decisions are here too)."""
    settings = ApiSettings(port=port)
    url = f"http://127.0.0.1:{port}/ui/#/workflows/{quote(workflow_id, safe='')}"
    listening = functools.partial(click.echo, f"dashboard of the second run: {url} (Ctrl-C stops)")
    poller = StreamPoller(redis, client.keyspace, interval=5.0)
    server = functools.partial(serve, client, settings, listening=listening, registry=registered())
    return await run_until_signalled([server, poller.run])


def check_free(port: int) -> None:
    """Refuse a dashboard port another program holds before the runs, not after them."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise CannotListen("the dashboard (--ui-port)", "127.0.0.1", port, exc) from None


def summary(first: Run, second: Run, namespace: str) -> str:
    """What the cache saved; nothing, when an earlier run in this namespace had already
    filled it and the first run made no upstream search either.  A run's time leaves out
    its waits for a signal (``--approve``): how soon someone approves is not the cache's."""
    runs = (
        f"first run {first.seconds:.2f}s with {first.upstream} upstream searches; second run "
        f"{second.seconds:.2f}s with {second.hits} cache hits and {second.upstream} upstream "
        "searches"
    )
    if first.waited or second.waited:
        runs += f" (not counting {first.waited + second.waited:.2f}s waiting for approval)"
    if not (first.completed and second.completed):
        return f"{runs}: a run did not complete (see its table above), so nothing is compared"
    if first.upstream == 0:
        return (
            f"{runs}: the search cache was already warm (an earlier run in namespace "
            f"{namespace!r} filled it); give a fresh --namespace to see what it saves"
        )
    return f"{runs}: {first.seconds - second.seconds:.2f}s saved"


@dataclass(frozen=True)
class Run:
    workflow: str
    seconds: float  # from submit to its end, less its waits
    waited: float  # seconds its tasks waited for a signal
    completed: bool
    hits: int
    upstream: int


def with_approval(spec: WorkflowSpec) -> WorkflowSpec:
    """``spec`` with an approval gate before its validation: a wait for the signal
    ``approval`` (its payload the gate's result) that the validation needs too."""
    validation = next((t for t in spec.tasks if t.agent == "validation"), None)
    if validation is None:
        raise ConfigError("--approve: the workflow has no validation task to gate")
    gate = TaskSpec(id="approve", wait_for=APPROVAL, needs=validation.needs, timeout=3600)
    tasks: list[TaskSpec] = []
    for task in spec.tasks:
        if task is validation:
            tasks += (gate, replace(task, needs=(*task.needs, gate.id)))
        else:
            tasks.append(task)
    return replace(spec, tasks=tuple(tasks))


async def run_once(client: Client, spec: WorkflowSpec, label: str, hint: str | None) -> Run:
    """One run; with ``hint`` (the approval's arguments after the workflow id), print the
    command that approves it."""
    before = await totals(client.redis, client.keyspace)
    started = time.monotonic()
    workflow_id = await client.submit(spec)
    click.echo(f"\n== {label}: workflow {workflow_id}", err=True)
    if hint is not None:
        click.echo(f"approve it with: streamproc signal {workflow_id} {hint}")
    state = await print_events(client, workflow_id)
    seconds = time.monotonic() - started
    click.echo(render_state(state, describe, width=90))
    after = await totals(client.redis, client.keyspace)
    waited = sum(
        (t.ended_ms - t.began_ms) / 1000
        for t in state.tasks
        if t.wait_for and t.began_ms is not None and t.ended_ms is not None
    )
    return Run(
        workflow_id,
        seconds - waited,
        waited,
        state.status == "completed",
        after["hit"] - before["hit"],
        after["upstream"] - before["upstream"],
    )


def describe(result: Any) -> str:
    """A result for the table; a validation's says what its score means, since a workflow
    completes whatever the score (the prototype's validation reports, it does not adjust)."""
    if isinstance(result, dict) and {"score", "complete", "checked"} <= result.keys():
        verdict = "complete" if result["complete"] else f"incomplete: under {COMPLETE_AT}"
        return (
            f"score {result['score']}/100 ({verdict}) for {result['checked']}; "
            f"{result.get('supplement', '')}"
        )
    return outline(result)


async def totals(redis: Redis, keyspace: Keyspace) -> dict[str, int]:
    """Cache counters summed over providers."""
    summed = {"hit": 0, "miss": 0, "upstream": 0}
    for counters in (await cache_stats(redis, keyspace)).values():
        for name in summed:
            summed[name] += counters.get(name, 0)
    return summed
