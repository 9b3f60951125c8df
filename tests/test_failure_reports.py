"""What a failed attempt leaves behind: its one-line error, and its traceback (bounded, frame
locals never included) in the task's history, ``dead show``, ``show --history`` and the
worker's log, which holds one line per failed attempt naming workflow, task and attempt."""

from __future__ import annotations

import inspect
import signal
from collections.abc import Callable
from typing import Any

import orjson

from streamproc import Client, Keyspace
from streamproc.engine.outcome import run_agent
from streamproc.engine.tracebacks import MAX_TRACEBACK_CHARS
from streamproc.registry import Task
from streamproc.store.codec import TaskEvent
from tests.agents_for_tests import SECRET, look_up_missing_key
from tests.cli_runner import Run, at, run
from tests.conftest import Engine
from tests.daemon import Daemon


def names_the_failing_line(text: str) -> bool:
    """``text`` holds a traceback naming look_up_missing_key, the line where it fails and the
    source of that line, indented as it may be."""
    lines, first = inspect.getsourcelines(look_up_missing_key)
    [offset] = [i for i, line in enumerate(lines) if "return" in line and "missing_key" in line]
    frame = f"line {first + offset}, in look_up_missing_key\n"
    return frame in text and f'{frame}{" " * 4}return settings["missing_key"]' in dedented(text)


def dedented(text: str) -> str:
    return "\n".join(line.strip() and "    " + line.strip() for line in text.split("\n"))


async def run_to_failure(
    client: Client, worker_processes: Callable[..., Daemon], agent: str, retries: int = 0
) -> tuple[str, str]:
    """Run one task of ``agent`` in a worker process until its workflow fails; its id and the
    worker's log, once the worker stopped."""
    process = worker_processes(agent)
    spec = {"tasks": [{"id": "t", "agent": agent, "retries": retries}]}
    workflow_id = await client.submit(spec)
    assert (await client.wait(workflow_id, timeout=20)).status == "failed"
    process.signal(signal.SIGTERM)
    assert await process.wait() == 0
    return workflow_id, process.log_text()


async def cli_views(redis_url: str, keyspace: Keyspace, agent: str, workflow_id: str) -> list[Run]:
    """``dead show`` (text and JSON) of the one dead letter, and ``show --history``."""
    where = at(redis_url, keyspace)
    listed = await run("dead", "list", "--agent", agent, "--json", *where)
    entry = orjson.loads(listed.out)["id"]
    views = [
        await run("dead", "show", entry, "--agent", agent, *where),
        await run("dead", "show", entry, "--agent", agent, "--json", *where),
        await run("show", workflow_id, "--history", *where),
    ]
    assert all(view.code == 0 for view in views), views
    return views


async def test_a_failing_agents_traceback_shows_in_dead_show_show_history_and_the_log(
    resolver_only: Engine,
    client: Client,
    worker_processes: Callable[..., Daemon],
    redis_url: str,
    keyspace: Keyspace,
) -> None:
    workflow_id, log = await run_to_failure(client, worker_processes, "lookup", retries=1)
    [task] = (await client.get(workflow_id)).tasks
    assert task.error == "KeyError: 'missing_key'", "the error stays one line"
    assert [h["attempt"] for h in task.history] == [1, 2]
    for attempt in task.history:
        assert names_the_failing_line(attempt["traceback"])
        assert attempt["traceback"].endswith("KeyError: 'missing_key'\n")

    text, as_json, history = await cli_views(redis_url, keyspace, "lookup", workflow_id)
    assert names_the_failing_line(text.out) and "Traceback (most recent call last)" in text.out
    assert names_the_failing_line(orjson.loads(as_json.out)["history"][-1]["traceback"])
    assert names_the_failing_line(history.out), "indented under its event"

    failed = [line for line in log.splitlines() if "task failed" in line]
    assert len(failed) == 2, log  # once per attempt
    for number, line in enumerate(failed, 1):
        assert f"[wf={workflow_id} task=t attempt={number} agent=lookup]" in line
    assert log.count("in look_up_missing_key") == 2, log


async def test_a_result_that_is_not_json_fails_the_task_with_one_log_line_saying_why(
    resolver_only: Engine, client: Client, worker_processes: Callable[..., Daemon]
) -> None:
    workflow_id, log = await run_to_failure(client, worker_processes, "setter")
    state = await client.get(workflow_id)
    assert "result is not JSON-serialisable" in state.reason
    [line] = [line for line in log.splitlines() if "not JSON-serialisable" in line]
    assert f"[wf={workflow_id} task=t attempt=1 agent=setter]" in line


async def test_a_key_held_in_a_frame_local_is_in_no_traceback_and_the_message_stays_scrubbed(
    resolver_only: Engine,
    client: Client,
    worker_processes: Callable[..., Daemon],
    redis_url: str,
    keyspace: Keyspace,
) -> None:
    workflow_id, log = await run_to_failure(client, worker_processes, "keyholder")
    [task] = (await client.get(workflow_id)).tasks
    [attempt] = task.history
    assert "in refused_with_a_key" in attempt["traceback"]
    assert attempt["traceback"].endswith("ProviderError: fake: key *** refused\n")
    views = await cli_views(redis_url, keyspace, "keyholder", workflow_id)
    shown = [log, orjson.dumps(task.__dict__).decode(), *(view.out for view in views)]
    assert "in refused_with_a_key" in log
    assert not [text for text in shown if SECRET in text]


async def test_a_traceback_is_bounded_keeping_the_innermost_frames_and_the_exception() -> None:
    def down(depth: int) -> Any:
        return {}["x" * 20_000] if depth == 0 else across(depth - 1)

    def across(depth: int) -> Any:
        return down(depth)

    def agent(task: Task) -> Any:
        return down(400)

    event = TaskEvent(b"1-0", "wf", "t", "agent", 1, None, {}, None)
    outcome = await run_agent(agent, event, 1000)
    assert outcome.output.startswith(b"KeyError: 'xxx")
    assert len(outcome.traceback) <= MAX_TRACEBACK_CHARS
    assert outcome.traceback.split("\n")[-2].startswith("KeyError: 'xxx")
    assert 'return {}["x" * 20_000]' in outcome.traceback, "the innermost frame is kept"
    assert ", in agent\n" not in outcome.traceback, "the outermost frames are cut"
