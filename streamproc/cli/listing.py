"""``streamproc list``: workflows newest first, a page at a time (``ops/listing.py``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
import orjson

from streamproc.cli.options import json_option
from streamproc.cli.tables import Column, table
from streamproc.cli.verb import Context, connected, fail, verb
from streamproc.errors import SpecError
from streamproc.ops.listing import DEFAULT_LIMIT, MAX_LIMIT, Query, list_workflows, parse_since
from streamproc.store.state import WorkflowStatus

COLUMNS = [
    Column("id", "id", "<"),
    Column("name", "name", "<"),
    Column("status", "status", "<"),
    Column("created (UTC)", "created", "<"),
    Column("took", "took", ">"),
    Column("done", "done", ">"),
    Column("failed", "failed", ">"),
    Column("queued", "queued", ">"),
    Column("running", "running", ">"),
]


@click.command("list")
@verb
@click.option("--status", help=f"Only workflows in this status: {'|'.join(WorkflowStatus)}.")
@click.option("--name", help="Only workflows of this exact name.")
@click.option("--since", help="Only those created at or after: ms since the epoch or ISO-8601.")
@click.option(
    "--limit",
    type=int,
    default=DEFAULT_LIMIT,
    show_default=True,
    help=f"Workflows per page, 1 to {MAX_LIMIT}.",
)
@click.option("--cursor", help="Go on after the page that printed it.")
@json_option('The page as one JSON object: {"workflows": [...], "cursor": ...}.')
async def list_(
    ctx: Context,
    status: str | None,
    name: str | None,
    since: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """Workflows newest first: id, name, status, when created, how long it took, task
    counts, and why it ended.  When more follow, the last line says how to see them."""
    try:
        moment = None if since is None else parse_since(since)
        query = Query(status, name, moment, limit, cursor)
    except SpecError as exc:  # a bad option value: a usage error (exit 2), as click's own
        fail(str(exc), 2)
    async with connected(ctx) as redis:
        page = await list_workflows(redis, ctx.keyspace, query)
    if as_json:
        click.echo(orjson.dumps(page.to_dict()))
        return
    rows = [_row(w.to_dict()) for w in page.workflows]
    for line in table(COLUMNS, rows, "reason"):
        click.echo(line)
    if page.cursor is not None:
        click.echo(f"more: the same command with --cursor {page.cursor}")


def _row(workflow: dict[str, Any]) -> dict[str, Any]:
    created, ended = workflow["created"], workflow["ended"]
    tasks = workflow["tasks"]
    return {
        **workflow,
        **tasks,
        "created": datetime.fromtimestamp(created / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "took": None if ended is None else f"{(ended - created) / 1000:.1f}s",
        "done": f"{tasks['done']}/{tasks['total']}",
    }
