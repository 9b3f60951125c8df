"""A workflow's history is its compact archive (``{ns:s}:past:<id>``), one line an event,
written in the call that emits it; its history stream exists only while someone follows it
(``sp_watch``), and outlives the end by ``WATCH_MS`` at most.  Every reader (history, follow,
events --workflow, the API's event stream) sees the same events, with the same ids, whether
the stream is there or not; late events and a revival's next end reach the archive once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace
from streamproc.http.auth import ApiSettings
from streamproc.ops import deadletters
from streamproc.ops.follow import follow_workflow
from streamproc.ops.history import parse
from streamproc.store.folded import shift_id
from streamproc.store.keys import WATCH_MS
from tests.conftest import Engine, eventually, stowed
from tests.http_helpers import AUTH, Http, serving, sse_frames
from tests.output_agents import spec, talking_engine
from tests.test_output_readers import blocked_follower


@pytest.fixture
async def talking(redis_url: str, keyspace: Keyspace) -> AsyncIterator[Engine]:
    async with talking_engine(redis_url, keyspace) as running:
        yield running


async def stream_gone(redis: Redis, keyspace: Keyspace, workflow_id: str) -> None:
    """Its followers' hold lapses at once: the history stream expires, if there was one."""
    stream = keyspace.history(workflow_id)
    await redis.pexpire(stream, 1)
    await eventually(lambda: _absent(redis, stream))


async def _absent(redis: Redis, key: str) -> bool:
    return not await redis.exists(key)


async def archived(redis: Redis, keyspace: Keyspace, workflow_id: str) -> list[str]:
    """The ids in the workflow's archive, in order."""
    return [i.decode() for i, _ in parse(workflow_id, await redis.get(keyspace.past(workflow_id)))]


async def test_an_ended_history_reads_the_same_once_its_stream_expired(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    spec = {"tasks": [{"id": "a", "agent": "flaky", "input": {"fail": 1}}]}
    workflow_id = await client.submit(spec)
    await client.wait(workflow_id, timeout=20)
    await stowed(redis, keyspace, workflow_id)
    before = await client.history(workflow_id)
    past, stream = keyspace.past(workflow_id), keyspace.history(workflow_id)
    assert await archived(redis, keyspace, workflow_id) == [e["id"] for e in before]
    assert 0 < await redis.pttl(past) <= 7 * 24 * 3600 * 1000  # expires as the workflow
    assert await redis.pttl(stream) != -1  # gone, or expiring: never kept
    own = len((await redis.get(past)).split(b"\n", 1)[0])  # the workflow's own fields
    assert await redis.strlen(past) - own < 150 * len(before)  # compact: a line an entry
    followed = [e async for e in follow_workflow(redis, keyspace, workflow_id)]
    await stream_gone(redis, keyspace, workflow_id)
    assert await client.history(workflow_id) == before
    shown = [e async for e in client.follow(workflow_id, start="0", output=False)]
    assert shown == before  # ids and all
    assert [e async for e in follow_workflow(redis, keyspace, workflow_id)] == followed
    later = [e async for e in follow_workflow(redis, keyspace, workflow_id, before[1]["id"])]
    assert [e.id for e in later] == [e["id"] for e in before[2:]]


async def test_a_follower_blocked_while_the_workflow_ends_gets_its_final_event_at_once(
    client: Client, redis: Redis, redis_url: str, keyspace: Keyspace
) -> None:
    async with Client(redis_url, ClientSettings(keyspace=keyspace)) as plain:
        workflow_id = await plain.submit({"tasks": [{"id": "a", "agent": "nobody"}]})
    events: list[dict[str, Any]] = []

    async def follow() -> None:
        async for event in client.follow(workflow_id, "$", output=False):
            events.append(event)

    following = asyncio.create_task(follow())
    await eventually(lambda: blocked_follower(redis))
    began = time.monotonic()
    await client.cancel(workflow_id, "enough")
    await asyncio.wait_for(following, 20)
    assert time.monotonic() - began < 0.8  # woken by the event, not by the 1 s read timeout
    assert [e["kind"] for e in events] == ["cancelled"]


async def test_the_event_stream_resumes_from_the_archive_with_the_same_ids(
    talking: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    workflow_id = await client.submit(spec("second_try"))
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    http: Http
    async with serving(client, ApiSettings()) as http:
        url = f"/workflows/{workflow_id}/events"
        async with asyncio.timeout(20):
            frames = sse_frames(await (await http.get(url, headers=AUTH)).text())
            await stream_gone(redis, keyspace, workflow_id)
            assert sse_frames(await (await http.get(url, headers=AUTH)).text()) == frames
            at_output = next(i for i, f in enumerate(frames) if f["event"] == "output")
            resumed = await http.get(
                url, headers={**AUTH, "Last-Event-ID": frames[at_output]["id"]}
            )
            assert sse_frames(await resumed.text()) == frames[at_output + 1 :]
    assert frames[-1]["event"] == "completed"
    assert [f["event"] for f in frames].count("output") == 2


async def test_late_events_and_a_revived_end_reach_the_archive_once_in_order(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    spec = {"tasks": [{"id": "a", "agent": "fixable"}, {"id": "g", "agent": "gate"}]}
    workflow_id = await client.submit(spec)
    await eventually(lambda: redis.llen(f"ledger:{workflow_id}"))  # g runs
    assert (await client.wait(workflow_id, timeout=20)).status == "failed"
    await stream_gone(redis, keyspace, workflow_id)
    await redis.rpush(f"open:{workflow_id}:g", 1)  # g ends after its workflow failed
    await eventually(lambda: _done(client, workflow_id, "g"))
    kinds = [e["kind"] for e in await client.history(workflow_id)]
    # g's start may be recorded after the failure (its worker's next flush): late too
    assert kinds[-1] == "task_done" and kinds.index("failed") < len(kinds) - 1
    assert len(await archived(redis, keyspace, workflow_id)) == len(kinds)
    assert await redis.strlen(keyspace.past(workflow_id)) == len(
        await redis.get(keyspace.past(workflow_id))
    )
    await stream_gone(redis, keyspace, workflow_id)
    await redis.set(f"fixed:{workflow_id}", 1)
    [dead] = [
        d
        for d in await deadletters.list_dead(redis, keyspace, "fixable")
        if d.workflow == workflow_id
    ]
    await deadletters.requeue(redis, keyspace, "fixable", dead.entry_id)
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    history = await client.history(workflow_id)
    ids = [e["id"] for e in history]
    assert await archived(redis, keyspace, workflow_id) == ids
    assert sorted(ids, key=lambda i: tuple(map(int, i.split("-")))) == ids
    assert len(set(ids)) == len(ids)
    assert [e["kind"] for e in history].count("completed") == 1
    assert [e["kind"] for e in history][len(kinds) :][0] == "resumed"


async def _done(client: Client, workflow_id: str, task: str) -> bool:
    return await _recorded(client, workflow_id, task, "task_done")


async def _recorded(client: Client, workflow_id: str, task: str, kind: str) -> bool:
    """An event of ``kind`` for ``task`` is in the workflow's history: a task's start, say, is
    recorded by its worker's next flush, after its agent began (the gate's ledger shows)."""
    return any(
        e["kind"] == kind and e.get("task") == task for e in await client.history(workflow_id)
    )


async def test_a_workflow_kept_forever_keeps_its_archive_and_its_stream_still_expires(
    engine: Engine, redis_url: str, redis: Redis, keyspace: Keyspace
) -> None:
    async with Client(redis_url, ClientSettings(keyspace=keyspace, workflow_ttl=0)) as forever:
        workflow_id = await forever.submit({"tasks": [{"id": "a", "agent": "gate"}]})
        waiting = asyncio.create_task(forever.wait(workflow_id, timeout=20))
        await eventually(lambda: redis.exists(keyspace.history(workflow_id)))  # followed
        await redis.rpush(f"open:{workflow_id}:a", 1)
        await waiting
        await stowed(redis, keyspace, workflow_id)
        assert await redis.pttl(keyspace.past(workflow_id)) == -1
        assert 0 < await redis.pttl(keyspace.history(workflow_id)) <= WATCH_MS
        before = await forever.history(workflow_id)
        await stream_gone(redis, keyspace, workflow_id)
        assert await forever.history(workflow_id) == before
        assert [e["kind"] for e in before][-1] == "completed"
    assert (await archived(redis, keyspace, workflow_id))[0] == before[0]["id"]


async def test_any_text_in_an_archived_event_reads_back_as_it_was(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    workflow_id = await client.submit({"tasks": [{"id": "g", "agent": "gate"}]})
    await eventually(lambda: _recorded(client, workflow_id, "g", "task_started"))  # g runs
    reason = 'say "no"\n["1-0", \\ ] é 😀 \t/'
    await client.cancel(workflow_id, reason)
    await stream_gone(redis, keyspace, workflow_id)
    await redis.rpush(f"open:{workflow_id}:g", 1)  # a late outcome after the archived reason
    await eventually(lambda: _done(client, workflow_id, "g"))
    await stream_gone(redis, keyspace, workflow_id)
    history = await client.history(workflow_id)
    assert [e["kind"] for e in history] == ["submitted", "task_started", "cancelled", "task_done"]
    assert history[2]["reason"] == reason


async def test_a_running_workflow_keeps_its_history_in_its_archive_and_a_stream_only_when_followed(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    workflow_id = await client.submit({"tasks": [{"id": "g", "agent": "gate"}]})
    await eventually(lambda: _recorded(client, workflow_id, "g", "task_started"))  # g runs
    stream = keyspace.history(workflow_id)
    assert not await redis.exists(stream)  # nobody follows
    running = await client.history(workflow_id)
    assert running[0]["kind"] == "submitted"
    assert await archived(redis, keyspace, workflow_id) == [e["id"] for e in running]
    seen: list[str] = []

    async def follow() -> None:
        async for event in client.follow(workflow_id, "$", output=False):
            seen.append(event["kind"])

    following = asyncio.create_task(follow())
    await eventually(lambda: redis.exists(stream))
    assert 0 < await redis.pttl(stream) <= WATCH_MS
    await redis.rpush(f"open:{workflow_id}:g", 1)
    await asyncio.wait_for(following, 20)
    assert seen[-2:] == ["task_done", "completed"]
    live = await redis.xrange(stream)  # what the follower read, under the archive's ids
    assert [i.decode() for i, _ in live] == (await archived(redis, keyspace, workflow_id))[
        -len(live) :
    ]


async def two_gates_with_a_short_hold(
    client: Client, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A workflow a -> b of gates, a running; followers renew their hold every 0.1 s."""
    monkeypatch.setattr("streamproc.ops.history.WATCH_MS", 300)
    spec = {"tasks": [{"id": "a", "agent": "gate"}, {"id": "b", "agent": "gate", "needs": ["a"]}]}
    workflow_id = await client.submit(spec)
    await eventually(lambda: redis.llen(f"ledger:{workflow_id}"))  # a runs
    return workflow_id


async def test_a_follower_whose_stream_expired_while_it_was_away_misses_no_event(
    engine: Engine,
    client: Client,
    redis: Redis,
    keyspace: Keyspace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workflow_id = await two_gates_with_a_short_hold(client, redis, monkeypatch)
    seen: list[tuple[str, str | None]] = []

    async def follow() -> None:
        async for event in client.follow(workflow_id, "$", output=False):
            seen.append((event["kind"], event.get("task")))

    following = asyncio.create_task(follow())
    await eventually(lambda: redis.exists(keyspace.history(workflow_id)))
    await redis.delete(keyspace.history(workflow_id))  # as if it expired: events bypass it
    await redis.rpush(f"open:{workflow_id}:a", 1)
    await eventually(lambda: _runs(redis, workflow_id, 2))  # b runs
    await eventually(lambda: _seen(seen, ("task_done", "a")))
    assert (await client.get(workflow_id)).status == "running"  # not its end's catch-up
    await redis.rpush(f"open:{workflow_id}:b", 1)
    await asyncio.wait_for(following, 20)
    kinds = [e["kind"] for e in await client.history(workflow_id)]
    assert [kind for kind, _ in seen] == [k for k in kinds if k != "submitted"][-len(seen) :]
    assert seen[-1] == ("completed", None)


async def test_an_api_event_stream_whose_history_stream_expired_misses_no_event(
    engine: Engine,
    client: Client,
    redis: Redis,
    keyspace: Keyspace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workflow_id = await two_gates_with_a_short_hold(client, redis, monkeypatch)
    async with serving(client, ApiSettings()) as http:
        response = await http.get(f"/workflows/{workflow_id}/events", headers=AUTH)
        received = b""
        async with asyncio.timeout(20):
            await eventually(lambda: redis.exists(keyspace.history(workflow_id)))
            await redis.delete(keyspace.history(workflow_id))  # as if it expired
            await redis.rpush(f"open:{workflow_id}:a", 1)
            while b"event: task_done" not in received:  # a's, from the archive
                received += await response.content.readany()
            assert (await client.get(workflow_id)).status == "running"  # not its end's catch-up
            await redis.rpush(f"open:{workflow_id}:b", 1)
            received += await response.content.read()
    history = await client.history(workflow_id)
    assert [f["id"] for f in sse_frames(received.decode())] == [e["id"] for e in history]
    assert history[-1]["kind"] == "completed"


async def _seen(seen: list[tuple[str, str | None]], event: tuple[str, str]) -> bool:
    return event in seen


async def _runs(redis: Redis, workflow_id: str, started: int) -> bool:
    return await redis.llen(f"ledger:{workflow_id}") == started


async def test_a_workflow_submitted_before_its_archive_grew_as_it_ran_keeps_its_first_events(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    """A workflow that ran under 0.7 kept its events in its history stream only, until its
    end: its next event moves them to its archive, and its history reads whole."""
    workflow_id = await client.submit({"tasks": [{"id": "g", "agent": "gate"}]})
    await eventually(lambda: _recorded(client, workflow_id, "g", "task_started"))  # g runs
    before = await client.history(workflow_id)
    stream, past = keyspace.history(workflow_id), keyspace.past(workflow_id)
    for event in before:  # as 0.7 kept it: in the stream, no archive
        fields = {k: v for k, v in event.items() if k != "id"}
        await redis.xadd(stream, fields, id=event["id"])  # type: ignore[arg-type]
    await redis.delete(past)
    assert await client.history(workflow_id) == before  # read from the stream
    await redis.rpush(f"open:{workflow_id}:g", 1)
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    history = await client.history(workflow_id)
    assert history[: len(before)] == before
    assert [e["kind"] for e in history][-2:] == ["task_done", "completed"]
    assert await archived(redis, keyspace, workflow_id) == [e["id"] for e in history]
    assert 0 < await redis.pttl(stream) <= WATCH_MS  # adopted: it goes


async def test_an_archived_event_keeps_its_times_in_a_few_digits_and_reads_back_whole(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    workflow_id = await client.submit({"tasks": [{"id": "a", "agent": "echo"}]})
    await client.wait(workflow_id, timeout=20)
    await stowed(redis, keyspace, workflow_id)
    events = await redis.xrange(keyspace.events(keyspace.shard_of(workflow_id)))
    stream = [(i, f) for i, f in events if f[b"wf"] == workflow_id.encode()]
    first, *lines = (await redis.get(keyspace.past(workflow_id))).decode().splitlines()
    created = int(orjson.loads(first)["created"])  # the lines' ids are ms after it
    assert [orjson.loads(line)[:2] for line in lines] == [
        [shift_id(i, -created).decode(), f[b"kind"].decode()] for i, f in stream
    ]
    for line, (entry_id, fields) in zip(lines, stream, strict=True):
        ms = int(entry_id.split(b"-")[0])
        assert '"v"' not in line and '"wf"' not in line
        parts = orjson.loads(line)
        times = dict(zip(parts[2::2], parts[3::2], strict=True))
        assert times.get("at", 0) == int(fields[b"at"]) - ms  # a number: a digit or two
        assert times.get("began", 0) == int(fields.get(b"began", ms)) - ms
    assert await client.history(workflow_id) == [
        {"id": i.decode(), **{k.decode(): v.decode() for k, v in f.items()}} for i, f in stream
    ]
    assert [list(f) for _, f in parse(workflow_id, "\n".join([first, *lines]).encode())] == [
        list(f) for _, f in stream
    ]


def test_an_archived_time_written_as_text_reads_back_as_it_was() -> None:
    line = b'["1700000000000-3","task_done","at",-2,"began","0123","note","7"]'
    [(entry_id, fields)] = parse("wf-1", line)
    assert entry_id == b"1700000000000-3"
    assert fields == {
        b"v": b"1",
        b"kind": b"task_done",
        b"wf": b"wf-1",
        b"at": b"1699999999998",
        b"began": b"0123",
        b"note": b"7",
    }


def test_an_at_left_out_reads_back_as_the_ids_ms_in_its_place() -> None:
    """`at` is left out of a line when it is its id's ms: back after `att`, else after `wf`
    (a task named "att" is a value, not the field)."""
    lines = b'["1700000000000-3","task_done","task","att","att","2","began",-1]\n'
    lines += b'["1700000000001-0","completed"]'
    [(_, done), (_, completed)] = parse("wf-1", lines)
    assert list(done.items()) == [
        (b"v", b"1"),
        (b"kind", b"task_done"),
        (b"wf", b"wf-1"),
        (b"task", b"att"),
        (b"att", b"2"),
        (b"at", b"1700000000000"),
        (b"began", b"1699999999999"),
    ]
    assert list(completed.items()) == [
        (b"v", b"1"),
        (b"kind", b"completed"),
        (b"wf", b"wf-1"),
        (b"at", b"1700000000001"),
    ]


def test_a_stowed_archive_reads_its_offsets_and_its_by_back_in_either_line_form() -> None:
    """A stowed archive's lines have ids as ms after its creation and a `by` naming the
    tasks' one consumer as 1, in 0.8's compact lines and in 0.7's (a workflow that ended
    under 0.7 and is stowed now) alike."""
    stowed = b'{"created":"1700000000000","order":"a","w:":"vm-1","status":"completed"}\n'
    lines = b'["5-0","v","1","kind","task_started","task","a","att","1","at","1700000000005",'
    lines += b'"by",1]\n["9-1","task_done","task","a","att","1","began",-4,"by",1]\n'
    [(started_id, started), (done_id, done)] = parse("wf-1", stowed + lines)
    assert (started_id, done_id) == (b"1700000000005-0", b"1700000000009-1")
    assert started[b"by"] == done[b"by"] == b"vm-1"
    assert (done[b"at"], done[b"began"]) == (b"1700000000009", b"1700000000005")


async def test_an_archived_value_that_is_not_utf8_reads_back_byte_for_byte(redis: Redis) -> None:
    """A line as 0.7 wrote it (every part a string, `v` kept): read as it was."""
    raw = b"\xff\xfe caf\xc3"  # what a foreign writer might put in a field
    line = await redis.eval(  # type: ignore[misc]
        "return cjson.encode({ARGV[1], 'v', '1', 'kind', 'task_started', 'by', ARGV[2]})",
        0,
        "1-0",
        raw,
    )
    [(entry_id, fields)] = parse("wf-1", line + b"\n")
    assert entry_id == b"1-0"
    assert fields == {b"v": b"1", b"kind": b"task_started", b"wf": b"wf-1", b"by": raw}
    assert list(fields) == [b"v", b"kind", b"wf", b"by"]  # wf where emit puts it
