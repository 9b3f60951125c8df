"""``streamproc signal WF NAME``: send a signal to a running workflow (see signals.py)."""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from streamproc.cli.options import json_option
from streamproc.cli.verb import Context, fail, verb
from streamproc.client import Client
from streamproc.config import ClientSettings
from streamproc.ops.signals import SignalSent, parse_payload, send


@click.command("signal")
@verb
@click.argument("workflow_id")
@click.argument("name")
@click.option(
    "--data",
    metavar="JSON|@FILE",
    help="The payload: JSON, or @ and a file holding JSON (default: null).",
)
@click.option(
    "--id", "signal_id", help="The signal's id: each id is applied once (default: a new one)."
)
@json_option("The outcome as JSON.")
async def signal_(
    ctx: Context,
    workflow_id: str,
    name: str,
    data: str | None,
    signal_id: str | None,
    as_json: bool,
) -> None:
    """Send the signal NAME to the running workflow WORKFLOW_ID: the first task waiting for it
    resumes with its payload; when none waits yet, it is kept (see `show`) for the first wait
    for it that begins.  Exit 1 if the workflow is unknown or has ended."""
    payload = read_payload(data)
    async with Client(ctx.redis, ClientSettings(keyspace=ctx.keyspace)) as client:
        sent = await send(client.redis, client.keyspace, workflow_id, name, payload, signal_id)
    click.echo(orjson.dumps(sent.to_dict()) if as_json else described(sent))


def read_payload(data: str | None) -> bytes:
    """``--data``: JSON, ``@FILE`` holding JSON, or null when not given (given empty, it is
    refused as the empty text it is)."""
    if data is None:
        return b"null"
    if not data.startswith("@"):
        return parse_payload(data)
    if data == "@":
        fail("--data @: give the file's name after the @", 2)
    try:
        raw = Path(data[1:]).read_bytes()
    except OSError as exc:
        fail(f"--data: cannot read {data[1:]}: {exc.strerror}", 2)
    return parse_payload(raw)


def described(sent: SignalSent) -> str:
    said = f"workflow {sent.workflow}: signal {sent.name} ({sent.id})"
    if sent.outcome == "applied":
        return f"{said} resumed task {sent.task}"
    if sent.outcome == "kept":
        return f"{said} kept until a wait for it begins"
    return f"{said} was sent before (its id applies once); this one changed nothing"
