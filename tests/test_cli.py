"""The real ``streamproc`` CLI, run as a subprocess against the test Redis."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace
from streamproc.store.ids import ID_PATTERN
from tests.cli_runner import (
    ECHO_AGENTS,
    STATUS_KEYS,
    assert_one_line_error,
    at,
    cli_env,
    run,
    run_sync,
    submitted_count,
    workflow_keys,
)
from tests.conftest import Engine, eventually

VERBS = ["up", "worker", "resolver", "submit", "status", "show", "events", "cancel", "api", "demo"]
UNREACHABLE = "redis://127.0.0.1:1/0"

ECHO_SPEC = """\
name: cli-echo
tasks:
  - {id: first, agent: echo, input: 1}
  - {id: second, agent: echo, input: 2, needs: [first]}
"""
POISON_SPEC = """\
tasks:
  - {id: ok, agent: echo, input: fine}
  - {id: bad, agent: poison, input: x, needs: [ok], retries: 0}
  - {id: never, agent: echo, needs: [bad]}
"""


@pytest.fixture
def echo_file(tmp_path: Path) -> Path:
    path = tmp_path / "echo.yaml"
    path.write_text(ECHO_SPEC)
    return path


# -- help ----------------------------------------------------------------------------------------


def test_the_console_script_lists_every_verb() -> None:
    result = run_sync("--help")
    assert result.code == 0, result
    for verb in VERBS:
        assert f"  {verb} " in result.out, verb


@pytest.mark.parametrize("verb", VERBS)
def test_help_works_for_every_verb(verb: str) -> None:
    result = run_sync(verb, "--help")
    assert result.code == 0, result
    assert result.out.startswith(f"Usage: streamproc {verb} "), result.out
    assert "--redis-url" in result.out and "--namespace" in result.out
    assert result.err == ""


def test_a_verb_whose_package_fails_to_import_fails_alone(tmp_path: Path) -> None:
    """A verb added through the entry-point group ``streamproc.commands`` is loaded only when
    used: one that cannot be imported gives a one-line error, and every other verb works."""
    info = tmp_path / "broken_verb-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-verb\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[streamproc.commands]\nbroken = no_such_module:verb\n")
    env = cli_env()
    env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{env['PYTHONPATH']}"

    listed = run_sync("--help", env=env)
    assert listed.code == 0, listed
    for verb in [*VERBS, "broken"]:
        assert f"  {verb} " in listed.out, verb
    broken = run_sync("broken", "--redis-url", UNREACHABLE, env=env)
    assert_one_line_error(
        broken,
        "error: verb broken is unavailable: ModuleNotFoundError: No module named 'no_such_module'",
    )
    assert broken.code == 1, broken
    for verb in ("status", "demo"):  # a built-in verb, and one another package adds
        assert run_sync(verb, "--help", env=env).code == 0, verb


# -- submit --------------------------------------------------------------------------------------


async def test_submit_prints_the_new_workflow_id(
    redis_url: str, keyspace: Keyspace, client: Client, echo_file: Path
) -> None:
    result = await run("submit", *ECHO_AGENTS, str(echo_file), *at(redis_url, keyspace))
    assert result.code == 0, result
    workflow_id = result.out.strip()
    assert result.out == workflow_id + "\n"
    assert ID_PATTERN.fullmatch(workflow_id)
    state = await client.get(workflow_id)
    assert state.name == "cli-echo"
    assert [t.id for t in state.tasks] == ["first", "second"]


async def test_submit_with_an_id_twice_prints_it_twice_and_creates_one_workflow(
    redis_url: str, keyspace: Keyspace, redis: Redis, echo_file: Path
) -> None:
    for _ in range(2):
        result = await run(
            "submit", *ECHO_AGENTS, str(echo_file), "--id", "cli-once", *at(redis_url, keyspace)
        )
        assert result.code == 0, result
        assert result.out == "cli-once\n"
    assert await workflow_keys(redis, keyspace) == [keyspace.workflow("cli-once").encode()]
    assert await submitted_count(redis, keyspace, "cli-once") == 1


async def test_submit_with_a_taken_id_and_another_spec_fails_with_a_one_line_error(
    redis_url: str, keyspace: Keyspace, echo_file: Path, tmp_path: Path, client: Client
) -> None:
    assert (
        await run("submit", *ECHO_AGENTS, str(echo_file), "--id", "taken", *at(redis_url, keyspace))
    ).code == 0
    other = tmp_path / "other.json"
    other.write_text('{"tasks": [{"id": "solo", "agent": "echo"}]}')
    result = await run(
        "submit", *ECHO_AGENTS, str(other), "--id", "taken", *at(redis_url, keyspace)
    )
    assert_one_line_error(result, "error: workflow 'taken' already exists with a different spec")
    assert result.out == ""
    assert [t.id for t in (await client.get("taken")).tasks] == ["first", "second"]


async def test_submit_of_an_invalid_spec_names_the_task_and_writes_nothing(
    redis_url: str, keyspace: Keyspace, redis: Redis, tmp_path: Path
) -> None:
    bad = tmp_path / "cycle.yaml"
    bad.write_text(
        "tasks:\n  - {id: a, agent: echo, needs: [b]}\n  - {id: b, agent: echo, needs: [a]}\n"
    )
    result = await run("submit", *ECHO_AGENTS, str(bad), *at(redis_url, keyspace))
    assert_one_line_error(result, "error: cycle: ")
    assert result.code == 1
    evil = tmp_path / "evil.yaml"
    evil.write_text(f'tasks: !!python/object/apply:os.system ["touch {tmp_path}/pwned"]\n')
    result = await run("submit", *ECHO_AGENTS, str(evil), *at(redis_url, keyspace))
    assert result.code == 1 and "Traceback" not in result.err, result
    assert result.err.startswith("error: invalid YAML: "), result.err  # then where, in the file
    assert not (tmp_path / "pwned").exists()
    assert [k async for k in redis.scan_iter(match=f"{{{keyspace.namespace}:*")] == []


def test_submit_of_a_deeply_nested_yaml_prints_a_one_line_error(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("tasks: " + "[" * 600 + "]" * 600 + "\n")
    result = run_sync("submit", *ECHO_AGENTS, str(deep), "--redis-url", UNREACHABLE)
    assert_one_line_error(result, "error: ")


async def test_submit_wait_exits_zero_when_the_workflow_completes(
    engine: Engine, redis_url: str, keyspace: Keyspace, client: Client, echo_file: Path
) -> None:
    result = await run("submit", *ECHO_AGENTS, str(echo_file), "--wait", *at(redis_url, keyspace))
    assert result.code == 0, result
    workflow_id = result.out.strip()
    assert result.out == workflow_id + "\n"
    assert result.err.splitlines()[-1] == f"workflow {workflow_id}: completed"
    state = await client.get(workflow_id)
    assert state.status == "completed"
    assert state.results["second"] == {"input": 2, "deps": {"first": 1}}


async def test_submit_wait_exits_non_zero_when_a_task_is_dead_lettered(
    engine: Engine, redis_url: str, keyspace: Keyspace, client: Client, tmp_path: Path
) -> None:
    spec = tmp_path / "poison.yaml"
    spec.write_text(POISON_SPEC)
    result = await run("submit", *ECHO_AGENTS, str(spec), "--wait", *at(redis_url, keyspace))
    assert result.code != 0, result
    workflow_id = result.out.strip()
    assert "poisoned input" in result.err
    assert f"workflow {workflow_id}: failed" in result.err.splitlines()[-1]
    state = await client.get(workflow_id)
    assert state.status == "failed"
    by_id = {t.id: t for t in state.tasks}
    assert by_id["ok"].state == "done"
    assert by_id["bad"].state == "failed" and by_id["bad"].attempt == 1
    assert by_id["never"].state != "done"

    status = await run("status", "--json", *at(redis_url, keyspace))
    assert status.code == 0, status
    rows = {row["agent"]: row for row in map(orjson.loads, status.out.splitlines())}
    assert rows["poison"]["dead_letters"] == 1
    assert rows["echo"]["dead_letters"] == 0


# -- status and show -----------------------------------------------------------------------------


async def test_status_json_prints_one_object_per_agent(
    engine: Engine, redis_url: str, keyspace: Keyspace, client: Client
) -> None:
    workflow_id = await client.submit(
        {"tasks": [{"id": "a", "agent": "echo"}, {"id": "b", "agent": "ledger", "needs": ["a"]}]}
    )
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    result = await run("status", "--json", *ECHO_AGENTS, *at(redis_url, keyspace))
    assert result.code == 0, result
    rows = [orjson.loads(line) for line in result.out.splitlines()]
    assert all(isinstance(row, dict) and set(row) == STATUS_KEYS for row in rows), rows
    agents = [row["agent"] for row in rows]
    assert len(agents) == len(set(agents))
    # Agents used in the namespace, and those the CLI process registers (--import).
    assert {"echo", "ledger", "sleep"} <= set(agents)
    by_agent = {row["agent"]: row for row in rows}
    for name in ("echo", "ledger"):
        row = by_agent[name]
        assert row["length"] >= 1 and row["lag"] == 0 and row["dead_letters"] == 0, row
        assert row["consumers"] >= 1, row  # the in-process worker's consumer
    assert all(
        isinstance(v, int) for row in rows for k, v in row.items() if k not in ("agent", "desired")
    )


async def test_status_of_an_empty_namespace_lists_registered_agents_with_zeroes(
    redis_url: str, keyspace: Keyspace
) -> None:
    result = await run("status", "--json", *ECHO_AGENTS, *at(redis_url, keyspace))
    assert result.code == 0, result
    rows = [orjson.loads(line) for line in result.out.splitlines()]
    assert {"echo", "sleep"} <= {row["agent"] for row in rows}
    for row in rows:
        assert row == {**dict.fromkeys(STATUS_KEYS, 0), "agent": row["agent"], "desired": None}
    table = await run("status", *at(redis_url, keyspace))
    assert table.code == 0 and table.out.split()[:6] == [
        "agent",
        "length",
        "lag",
        "pending",
        "consumers",
        "dead",
    ]


async def test_show_reports_a_task_held_by_a_worker_as_running(
    resolver_only: Engine, redis_url: str, keyspace: Keyspace, client: Client
) -> None:
    worker = resolver_only.start_worker(("sleep",))
    workflow_id = await client.submit(
        {
            "tasks": [
                {"id": "nap", "agent": "sleep", "input": {"seconds": 30}},
                {"id": "after", "agent": "echo", "needs": ["nap"]},
            ]
        }
    )

    async def running() -> bool:
        state = await client.get(workflow_id)
        return state.tasks[0].state == "running"

    await eventually(running)
    state = await client.get(workflow_id)
    assert [(t.state, t.consumer) for t in state.tasks] == [
        ("running", worker.consumer),
        ("waiting", ""),
    ]
    shown = await run("show", workflow_id, *at(redis_url, keyspace))
    assert shown.code == 0, shown
    nap = next(line for line in shown.out.splitlines() if line.split()[0] == "nap")
    assert nap.split()[2] == "running" and worker.consumer in nap


async def test_show_json_gives_each_task_state(
    engine: Engine, redis_url: str, keyspace: Keyspace, client: Client
) -> None:
    workflow_id = await client.submit(
        {
            "name": "shown",
            "tasks": [
                {"id": "a", "agent": "echo", "input": {"k": "v"}},
                {"id": "b", "agent": "echo", "input": 2, "needs": ["a"]},
            ],
        }
    )
    await client.wait(workflow_id, timeout=20)
    result = await run("show", workflow_id, "--json", *at(redis_url, keyspace))
    assert result.code == 0, result
    shown = orjson.loads(result.out)
    assert shown["id"] == workflow_id and shown["name"] == "shown"
    assert shown["status"] == "completed"
    tasks = {t["id"]: t for t in shown["tasks"]}
    assert list(tasks) == ["a", "b"]
    assert tasks["a"]["state"] == tasks["b"]["state"] == "done"
    assert tasks["a"]["result"] == {"k": "v"}
    assert tasks["b"]["needs"] == ["a"]
    assert tasks["b"]["result"] == {"input": 2, "deps": {"a": {"k": "v"}}}
    assert tasks["b"]["began_ms"] >= tasks["a"]["ended_ms"]

    table = await run("show", workflow_id, *at(redis_url, keyspace))
    assert table.code == 0, table
    assert table.out.splitlines()[0].startswith(f"workflow {workflow_id} shown: completed")


async def test_show_of_a_nameless_workflow_heads_it_with_status_time_and_reason(
    redis_url: str, keyspace: Keyspace, client: Client
) -> None:
    workflow_id = await client.submit({"tasks": [{"id": "a", "agent": "echo"}]})
    running = await run("show", workflow_id, *at(redis_url, keyspace))
    assert running.out.splitlines()[0] == f"workflow {workflow_id}: running", running
    await client.cancel(workflow_id, "changed my mind")
    cancelled = await run("show", workflow_id, *at(redis_url, keyspace))
    headline = rf"workflow {workflow_id}: cancelled in \d+\.\d\ds: changed my mind"
    assert re.fullmatch(headline, cancelled.out.splitlines()[0]), cancelled


async def test_show_of_an_unknown_id_exits_non_zero_with_a_one_line_error(
    redis_url: str, keyspace: Keyspace
) -> None:
    result = await run("show", "no-such-workflow", *at(redis_url, keyspace))
    assert_one_line_error(result, "error: workflow 'no-such-workflow' not found")
    assert result.out == ""
    result = await run("show", "bad:id", *at(redis_url, keyspace))
    assert_one_line_error(result, "error: invalid workflow id 'bad:id'")


# -- configuration errors ------------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["status", "submit", "show"])
def test_an_unreachable_redis_is_a_one_line_error(verb: str, echo_file: Path) -> None:
    args = {"status": [], "submit": [str(echo_file)], "show": ["some-id"]}[verb]
    result = run_sync(verb, *args, "--redis-url", UNREACHABLE, "--namespace", "unreached")
    assert_one_line_error(result, f"error: cannot reach Redis at {UNREACHABLE}")
    assert result.out == ""


@pytest.mark.parametrize("verb", ["up", "demo"])
def test_an_unreachable_cluster_is_an_error_not_a_private_single_node(verb: str) -> None:
    result = run_sync(verb, "--cluster", "--redis-url", UNREACHABLE, "--namespace", "unreached")
    assert_one_line_error(result, f"error: cannot reach Redis at {UNREACHABLE}")
    assert result.code == 2
    assert "private redis-server at" not in result.err


def test_a_worker_for_an_agent_nobody_registered_is_a_one_line_error() -> None:
    result = run_sync("worker", "--agent", "echo", "--redis-url", UNREACHABLE)
    assert_one_line_error(result, "error: no agent registered as echo")


def test_an_invalid_namespace_is_a_one_line_error() -> None:
    result = run_sync("status", "--redis-url", UNREACHABLE, "--namespace", "a:b")
    assert_one_line_error(result, "error: invalid namespace 'a:b'")


def test_a_url_that_is_not_redis_is_a_one_line_error() -> None:
    result = run_sync("status", "--redis-url", "http://127.0.0.1:6379/")
    assert_one_line_error(result, "error: not a Redis URL")


# -- demo ----------------------------------------------------------------------------------------


async def test_demo_runs_the_seed_workflow_twice_the_second_from_the_cache(
    redis_url: str,
) -> None:
    namespace = f"demo{uuid.uuid4().hex[:8]}"
    result = await run("demo", "--redis-url", redis_url, "--namespace", namespace)
    assert result.code == 0, result
    assert "no search API key set: local stand-ins for serpapi, brave, tavily, bing" in result.err
    lines = result.out.splitlines()
    headers = [i for i, line in enumerate(lines) if line.startswith("workflow ")]
    assert len(headers) == 2
    agents = ["description", "planning", "execution", "evaluation", "validation"]
    instances = [[f"t3[{n}]", "execution", "done"] for n in range(3)]  # the fixed plan's steps
    for i in headers:
        assert " agentic: completed" in lines[i]
        rows = lines[i + 2 : i + 10]
        assert [row.split()[:3] for row in rows] == [
            [f"t{n}", agent, "done"] for n, agent in enumerate(agents, 1)
        ] + instances
        workflow_id = lines[i].split()[1]
        async with Client(redis_url, ClientSettings(keyspace=Keyspace(namespace))) as other:
            assert (await other.get(workflow_id)).status == "completed"
    summary = lines[-1]
    assert "with 4 upstream searches; second run" in summary
    assert "with 4 cache hits and 0 upstream searches" in summary and summary.endswith("saved")
    assert "private redis-server" not in result.err  # it used the Redis it was given
