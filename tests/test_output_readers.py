"""Streamed output as read: chunks an agent emits reach ``Client.follow``, ``streamproc
events --workflow``, ``submit --wait`` and the API's event stream as ``output`` events, in
order between the task's start and end, with task and attempt, marked when their attempt was
superseded; an LLM answer streams through the local stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from redis.asyncio import Redis

from streamproc import Client, Keyspace
from streamproc.http.auth import ApiSettings
from streamproc.ops.events import HISTORY, OUTPUT, cursor_after, position_of, read_streams
from streamproc.outbound.http import close_session
from streamproc.outbound.llm import LLMClient, LLMSettings
from streamproc.testing.fakes import Behaviour, Fakes
from tests.cli_runner import at, run
from tests.conftest import Engine, eventually
from tests.http_helpers import AUTH, Http, serving, sse_frames
from tests.output_agents import CHUNKS, LLM, gate, outputs, spec, talking_engine


@pytest.fixture
async def talking(redis_url: str, keyspace: Keyspace) -> AsyncIterator[Engine]:
    async with talking_engine(redis_url, keyspace) as running:
        yield running


async def blocked_follower(redis: Redis) -> bool:
    """A client waits in XREAD: the follower has its starting point."""
    clients = cast(list[dict[str, Any]], await redis.client_list())
    return any(c.get("cmd") == "xread" and "b" in str(c.get("flags")) for c in clients)


def _ms(event: dict[str, Any]) -> int:
    """The millisecond of an event's id (its stream's, ``<ms>-<seq>``)."""
    return int(event["id"].split("-")[0])


async def test_client_follow_gets_the_chunks_in_order_before_the_task_ends(
    talking: Engine, client: Client, redis: Redis
) -> None:
    workflow_id = await client.submit(spec("talker", chunks=CHUNKS, gated=True))
    events: list[dict[str, Any]] = []

    async def follow() -> None:
        async for event in client.follow(workflow_id, "$"):
            events.append(event)

    following = asyncio.create_task(follow())
    await eventually(lambda: blocked_follower(redis))
    gate(workflow_id).set()
    await asyncio.wait_for(following, 20)
    assert outputs(events) == [
        ("say", "1", "0", "text", "Hel", False),
        ("say", "1", "1", "text", "lo", False),
        ("say", "1", "2", "json", {"tokens": 2}, False),
    ]
    kinds = [(e["kind"], e.get("task")) for e in events]
    assert kinds.index(("output", "say")) < kinds.index(("task_done", "say"))
    assert kinds[-1] == ("completed", None)


async def test_a_plain_function_agent_emits_with_emit_sync(
    talking: Engine, client: Client, redis_url: str, keyspace: Keyspace
) -> None:
    workflow_id = await client.submit(spec("sync_talker", chunks=CHUNKS))
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    result = await run("events", "--workflow", workflow_id, "--json", *at(redis_url, keyspace))
    assert result.code == 0, result
    events = [orjson.loads(line) for line in result.out.splitlines()]
    assert outputs(events) == [
        ("say", "1", "0", "text", "Hel", False),
        ("say", "1", "1", "text", "lo", False),
        ("say", "1", "2", "json", {"tokens": 2}, False),
    ]
    ms = [_ms(e) for e in events]
    assert ms == sorted(ms)  # merged with the lifecycle events by time
    kinds = [e["kind"] for e in events]
    # The start is written before the chunks, and each chunk before the task's end; within a
    # millisecond the chunks come first (each stream numbers its own ids).
    first, started = kinds.index("output"), kinds.index("task_started")
    assert started < first or ms[started] == ms[first]
    assert max(i for i, k in enumerate(kinds) if k == "output") < kinds.index("task_done")
    assert kinds[-1] == "completed"


async def test_chunks_of_a_superseded_attempt_are_marked(
    talking: Engine, client: Client, redis_url: str, keyspace: Keyspace
) -> None:
    workflow_id = await client.submit(spec("second_try"))
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    result = await run("events", "--workflow", workflow_id, "--json", *at(redis_url, keyspace))
    assert result.code == 0, result
    events = [orjson.loads(line) for line in result.out.splitlines()]
    assert outputs(events) == [
        ("say", "1", "0", "text", "attempt 1", True),
        ("say", "2", "0", "text", "attempt 2", False),
    ]
    steps = [(e["kind"], e.get("att")) for e in events]
    for attempt, end in (("1", "task_failed"), ("2", "task_done")):
        # each attempt's chunk before its end, and after its start unless of its millisecond
        chunk = steps.index(("output", attempt))
        started = steps.index(("task_started", attempt))
        assert chunk < steps.index((end, attempt))
        assert started < chunk or _ms(events[started]) == _ms(events[chunk])
    text = await run("events", "--workflow", workflow_id, *at(redis_url, keyspace))
    lines = [line for line in text.out.splitlines() if " output " in line]
    assert lines[0].endswith('chunk="attempt 1" superseded') and "superseded" not in lines[1]


async def test_output_events_reach_the_api_event_stream(talking: Engine, client: Client) -> None:
    workflow_id = await client.submit(spec("second_try"))
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    http: Http
    async with serving(client, ApiSettings()) as http:
        response = await http.get(f"/workflows/{workflow_id}/events", headers=AUTH)
        async with asyncio.timeout(20):
            frames = sse_frames(await response.text())
        chunks = [orjson.loads(f["data"]) for f in frames if f["event"] == "output"]
        assert [(c["att"], c["chunk"], c["superseded"]) for c in chunks] == [
            ("1", "attempt 1", True),
            ("2", "attempt 2", False),
        ]
        assert frames[-1]["event"] == "completed"
        ids = [f["id"] for f in frames]
        assert len(set(ids)) == len(ids)
        assert [orjson.loads(f["data"])["id"] for f in frames] == ids  # :out in both
        at_output = next(i for i, f in enumerate(frames) if f["event"] == "output")
        resumed = await http.get(
            f"/workflows/{workflow_id}/events",
            headers={**AUTH, "Last-Event-ID": frames[at_output]["id"]},
        )
        async with asyncio.timeout(20):
            assert sse_frames(await resumed.text()) == frames[at_output + 1 :]


async def test_an_llm_answer_streams_to_the_output_through_the_stand_in(
    talking: Engine, client: Client, redis_url: str, keyspace: Keyspace
) -> None:
    async with Fakes(retry_after=0) as fakes:
        settings = LLMSettings.from_env(fakes.env())
        assert settings is not None
        LLM[:] = [LLMClient(settings)]
        try:
            workflow_id = await client.submit(spec("poet", prompt="redis streams"))
            state = await client.wait(workflow_id, timeout=20)
            fakes.llm.script(Behaviour.BROKEN_STREAM)
            task = {"id": "say", "agent": "poet", "input": {"prompt": "q"}, "retries": 0}
            failed = await client.wait(await client.submit({"tasks": [task]}), timeout=20)
        finally:
            await close_session()
    assert state.status == "completed"
    result = await run("events", "--workflow", workflow_id, "--json", *at(redis_url, keyspace))
    events = [orjson.loads(line) for line in result.out.splitlines()]
    chunks = [e["chunk"] for e in events if e["kind"] == "output"]
    assert len(chunks) > 5 and "".join(chunks) == state.results["say"]
    assert failed.status == "failed"
    assert failed.tasks[0].error == "MalformedReply: llm: stream chunk 4 is not JSON"


async def test_submit_wait_prints_each_chunk_as_it_comes(
    talking: Engine, redis_url: str, keyspace: Keyspace, tmp_path: Path
) -> None:
    flow = tmp_path / "flow.json"
    flow.write_bytes(orjson.dumps(spec("talker", chunks=CHUNKS)))
    result = await run("submit", str(flow), "--wait", *at(redis_url, keyspace))
    assert result.code == 0, result
    shown = [line.split(None, 3)[1:] for line in result.err.splitlines() if " output " in line]
    assert shown == [
        ["output", "say", '"Hel"'],
        ["output", "say", '"lo"'],
        ["output", "say", '{"tokens":2}'],
    ]


async def test_a_tasks_chunks_come_before_its_end_though_both_streams_number_one_millisecond(
    redis: Redis, keyspace: Keyspace
) -> None:
    """Each stream numbers its own entries within a millisecond, so ids cannot order a chunk
    and an end written in the same one: the chunks come first (they are written before the
    end), and a reader resuming after any event gets exactly the events after it."""
    hist, out = keyspace.history("wf"), keyspace.output("wf")
    entries = [
        (hist, "1000-0", "submitted"),
        (hist, "1000-1", "task_started"),
        (out, "1001-0", "output"),
        (out, "1002-0", "output"),
        (out, "1002-1", "output"),
        (out, "1002-2", "output"),
        (hist, "1002-0", "task_done"),
        (hist, "1002-1", "completed"),
    ]
    for stream, entry_id, kind in entries:
        await redis.xadd(stream, {"kind": kind, "wf": "wf"}, id=entry_id)
    merged = await read_streams(redis, {hist: b"0-0", out: b"0-0"}, None)
    assert [(e.id, e.kind) for e in merged] == [(i, kind) for _, i, kind in entries]
    for at_event, event in enumerate(merged):
        had = position_of(event.resume_id)
        cursors = {hist: cursor_after(had, HISTORY), out: cursor_after(had, OUTPUT)}
        rest = await read_streams(redis, cursors, None)
        assert [e.resume_id for e in rest] == [e.resume_id for e in merged[at_event + 1 :]]


async def test_client_follow_gets_every_chunk_of_a_task_that_ends_as_it_emits(
    talking: Engine, client: Client
) -> None:
    """A one-task workflow whose chunks, task_done and completed often share a millisecond:
    every chunk is followed, before the task's end (a follower stopped at the final event,
    and missed chunks the merge had put after it, in about one run in four)."""
    words = ["Once", "upon", "a", "time", "there"]
    for _ in range(20):
        workflow_id = await client.submit(
            {"tasks": [{"id": "say", "agent": "talker", "input": {"chunks": words}}]}
        )
        events = [e async for e in client.follow(workflow_id, "0")]
        kinds = [e["kind"] for e in events]
        assert [c[4] for c in outputs(events)] == words, kinds
        assert kinds.index("task_done") > max(i for i, k in enumerate(kinds) if k == "output")
        assert kinds[-1] == "completed"


async def test_client_follow_gives_each_event_the_id_that_resumes_after_it(
    talking: Engine, client: Client
) -> None:
    """A program that stopped following can go on where it stopped, output events too."""
    workflow_id = await client.submit(spec("talker", chunks=CHUNKS))
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    events = [e async for e in client.follow(workflow_id, "0")]
    assert [e["id"].endswith(":out") for e in events] == [e["kind"] == "output" for e in events]
    for at_event, event in enumerate(events[:-1]):
        rest = [e async for e in client.follow(workflow_id, event["id"])]
        assert rest == events[at_event + 1 :], event
