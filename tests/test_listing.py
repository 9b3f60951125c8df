"""Listing workflows (``ops/listing.py``, ``Client.list``, ``streamproc list``) from each
shard's index: newest first across shards, filtered, paged by cursor without duplicates or
gaps, and rid of workflows once they expire."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace, SyncClient
from streamproc.engine.index import prune
from streamproc.errors import SpecError
from streamproc.ops.listing import WorkflowPage, WorkflowSummary
from streamproc.store import folded
from streamproc.store.state import TaskStatus
from tests.cli_runner import assert_one_line_error, at, run, run_sync
from tests.conftest import Engine, eventually

ONE = {"name": "one", "tasks": [{"id": "a", "agent": "echo", "input": 1}]}
TWO = {
    "name": "two",
    "tasks": [
        {"id": "a", "agent": "echo", "input": 1},
        {"id": "b", "agent": "echo", "input": 2, "needs": ["a"]},
    ],
}


@pytest.fixture
async def sharded(redis_url: str, keyspace: Keyspace) -> AsyncIterator[Client]:
    """A client over three shards of a fresh namespace."""
    spread = Keyspace(keyspace.namespace, shards=3)
    async with Client(redis_url, ClientSettings(keyspace=spread)) as client:
        yield client


async def everything(client: Client, **filters: Any) -> list[WorkflowSummary]:
    """Every page, following cursors; a page is never over its limit."""
    listed: list[WorkflowSummary] = []
    cursor = filters.pop("cursor", None)
    while True:
        page = await client.list(cursor=cursor, **filters)
        assert len(page.workflows) <= filters.get("limit", 50)
        listed += page.workflows
        if page.cursor is None:
            return listed
        cursor = page.cursor


def newest_first(summaries: list[WorkflowSummary]) -> list[str]:
    return [s.id for s in sorted(summaries, key=lambda s: (s.created, s.id), reverse=True)]


async def test_pages_over_shards_are_newest_first_without_duplicates_or_gaps(
    sharded: Client,
) -> None:
    one_by_one = [await sharded.submit(ONE, f"single-{i}") for i in range(7)]
    batch = await sharded.submit_many([(TWO, f"batch-{i}") for i in range(30)])  # ties in ms
    assert {sharded.keyspace.shard_of(i) for i in batch} == {0, 1, 2}
    listed = await everything(sharded, limit=4)
    assert len(listed) == 37
    assert [s.id for s in listed] == newest_first(listed)
    assert {s.id for s in listed} == {*one_by_one, *batch}
    assert [s.id for s in (await sharded.list(limit=500)).workflows] == [s.id for s in listed]

    head = await sharded.list(limit=5)
    newer = await sharded.submit(ONE, "arrived-later")
    rest = await everything(sharded, limit=5, cursor=head.cursor)
    # newer is ahead of the cursor (unless it came in the same ms with an id sorting lower)
    after_head = [s.id for s in head.workflows + rest if s.id != newer]
    assert after_head == [s.id for s in listed]


async def test_a_summary_counts_tasks_by_state_and_reads_no_whole_hash(sharded: Client) -> None:
    workflow_id = await sharded.submit(TWO, "counted")
    await sharded.cancel(workflow_id, "enough")
    [summary] = (await sharded.list(limit=1)).workflows
    state = await sharded.get(workflow_id)
    assert summary == WorkflowSummary(
        id=workflow_id,
        name="two",
        status="cancelled",
        created=state.created_ms,
        ended=state.ended_ms,
        tasks={"total": 2, **{str(status): 0 for status in TaskStatus}}
        | {t.state: sum(u.state == t.state for u in state.tasks) for t in state.tasks},
        reason="enough",
    )
    assert state.ended_ms is not None


async def test_filters_by_status_name_and_since(sharded: Client) -> None:
    first = await sharded.submit(ONE, "early-one")
    early_created = (await sharded.get(first)).created_ms
    runs = [await sharded.submit(TWO, f"two-{i}") for i in range(5)]
    ended = [runs[1], runs[3]]
    for workflow_id in ended:
        await sharded.cancel(workflow_id)
    late = await sharded.submit(ONE, "late-one")
    late_created = (await sharded.get(late)).created_ms

    assert [s.id for s in await everything(sharded, status="cancelled", limit=1)] == ended[::-1]
    running = await everything(sharded, status="running", limit=2)
    assert {s.id for s in running} == {first, late, runs[0], runs[2], runs[4]}
    assert all(s.status == "running" for s in running)
    assert [s.id for s in await everything(sharded, name="one")] == [late, first]
    assert [s.id for s in await everything(sharded, name="one", status="cancelled")] == []
    since = await everything(sharded, since=late_created)  # the same ms may hold others
    assert late in {s.id for s in since} and all(s.created >= late_created for s in since)
    assert first not in {s.id for s in since}
    iso = datetime.fromtimestamp(early_created / 1000, UTC).isoformat()
    assert len(await everything(sharded, since=iso)) == 7


async def test_bad_parameters_are_refused_with_one_line(sharded: Client) -> None:
    for bad, words in [
        ({"status": "done"}, "invalid status 'done': use running|completed|failed|cancelled"),
        ({"limit": 0}, "invalid limit 0: use 1 to 500"),
        ({"limit": 501}, "invalid limit 501"),
        ({"cursor": "not-a-cursor"}, "invalid cursor 'not-a-cursor'"),
        ({"since": "yesterday"}, "invalid since 'yesterday'"),
    ]:
        with pytest.raises(SpecError) as refused:
            await sharded.list(**bad)
        assert str(refused.value).startswith(words) and "\n" not in str(refused.value)


async def test_expired_workflows_leave_the_index_and_ttl_zero_ones_stay(
    redis_url: str, redis: Redis, keyspace: Keyspace
) -> None:
    spread = Keyspace(keyspace.namespace, shards=2)
    brief = ClientSettings(keyspace=spread, workflow_ttl=0.2)
    forever = ClientSettings(keyspace=spread, workflow_ttl=0)
    async with Client(redis_url, brief) as short, Client(redis_url, forever) as kept:
        gone = [await short.submit(ONE, f"brief-{i}") for i in range(6)]
        stays = await kept.submit(ONE, "forever")
        for workflow_id in [*gone, stays]:
            await short.cancel(workflow_id)  # ended: the brief ones expire 0.2 s later
        index_size = [await redis.zcard(spread.index(s)) for s in spread.all_shards()]
        assert sum(index_size) == 7

        async def expired() -> bool:
            return not any([await folded.exists(redis, spread, i) for i in gone])

        await eventually(expired)
        assert [s.id for s in (await short.list()).workflows] == [stays]
        # listing met the expired ones and dropped them; the ttl-0 one stays
        assert [await redis.zrange(spread.index(s), 0, -1) for s in spread.all_shards()] == [
            [b"forever"] if spread.shard_of("forever") == s else [] for s in spread.all_shards()
        ]


async def test_the_resolvers_walk_prunes_expired_workflows_past_a_long_lived_one(
    redis_url: str, redis: Redis, keyspace: Keyspace
) -> None:
    """The oldest member lives on (ttl 0), yet the expired ones behind it go."""
    brief = ClientSettings(keyspace=keyspace, workflow_ttl=0.2)
    forever = ClientSettings(keyspace=keyspace, workflow_ttl=0)
    async with Client(redis_url, brief) as short, Client(redis_url, forever) as kept:
        stays = await kept.submit(ONE, "oldest-forever")
        gone = [await short.submit(ONE, f"brief-{i}") for i in range(5)]
        running = await short.submit(ONE, "still-running")
        for workflow_id in gone:
            await short.cancel(workflow_id)

        async def pruned() -> list[bytes]:
            await prune(redis, keyspace, 0, 0)
            members: list[bytes] = await redis.zrange(keyspace.index(0), 0, -1)
            return members if len(members) == 2 else []

        assert await eventually(pruned) == [stays.encode(), running.encode()]


def test_the_sync_client_lists_a_typed_page(redis_url: str, keyspace: Keyspace) -> None:
    with SyncClient(redis_url, ClientSettings(keyspace=keyspace)) as client:
        workflow_id = client.submit(ONE, "synced")
        page = client.list(name="one", limit=10)
    assert isinstance(page, WorkflowPage)
    assert [s.id for s in page.workflows] == [workflow_id] and page.cursor is None


async def test_cli_prints_a_table_or_json_page_by_page(redis_url: str, sharded: Client) -> None:
    for i in range(3):
        await sharded.submit(TWO if i else ONE, f"cli-{i}")
    await sharded.cancel("cli-1", "stopped by hand")
    where = [*at(redis_url, sharded.keyspace), "--shards", "3"]

    table = await run("list", *where)
    assert table.code == 0, table
    lines = table.out.splitlines()
    assert lines[0].split() == [
        *("id", "name", "status", "created", "(UTC)", "took"),
        *("done", "failed", "queued", "running", "reason"),
    ]
    assert [line.split()[0] for line in lines[1:]] == ["cli-2", "cli-1", "cli-0"]
    assert lines[2].split()[:3] == ["cli-1", "two", "cancelled"]
    assert lines[2].endswith("stopped by hand")

    paged = await run("list", *where, "--limit", "2", "--json")
    assert paged.code == 0, paged
    page = orjson.loads(paged.out)
    assert [w["id"] for w in page["workflows"]] == ["cli-2", "cli-1"]
    assert page["workflows"][1]["tasks"]["total"] == 2
    rest = orjson.loads((await run("list", *where, "--cursor", page["cursor"], "--json")).out)
    assert [w["id"] for w in rest["workflows"]] == ["cli-0"] and rest["cursor"] is None

    more = await run("list", *where, "--limit", "1")
    assert more.out.splitlines()[-1].startswith("more: the same command with --cursor ")
    only = await run("list", *where, "--status", "cancelled", "--name", "two")
    assert [line.split()[0] for line in only.out.splitlines()[1:]] == ["cli-1"], only


def test_cli_refuses_bad_options_with_one_line(redis_url: str, keyspace: Keyspace) -> None:
    """Each is a usage error (exit 2), as a value click itself refuses (``--limit x``)."""
    where = at(redis_url, keyspace)
    for options, error in [
        (["--cursor", "x!"], "error: invalid cursor"),
        (["--since", "soon"], "error: invalid since"),
        (["--status", "done"], "error: invalid status"),
        (["--limit", "501"], "error: invalid limit 501"),
        (["--limit", "-1"], "error: invalid limit -1"),
        (["--limit", "x"], "error: Invalid value for '--limit'"),
    ]:
        refused = run_sync("list", *where, *options)
        assert_one_line_error(refused, error)
        assert refused.code == 2, (options, refused)


async def test_the_resolver_drops_completed_workflows_from_the_index_once_they_expire(
    engine: Engine, redis_url: str, redis: Redis, keyspace: Keyspace
) -> None:
    """No listing needed: the resolver's walk (every trim_interval) finds them gone."""
    brief = ClientSettings(keyspace=keyspace, workflow_ttl=0.2)
    async with Client(redis_url, brief) as client:
        ids = [await client.submit(ONE, f"runs-{i}") for i in range(3)]
        for workflow_id in ids:
            assert (await client.wait(workflow_id, timeout=20)).status == "completed"

    async def emptied() -> bool:
        return await redis.zcard(keyspace.index(0)) == 0

    await eventually(emptied)
