"""Agents nobody serves: refused at submit, counted as lag and flagged by ``status``, and
what ``up`` serves."""

from __future__ import annotations

import signal
from pathlib import Path

import orjson
from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace
from streamproc.http.auth import ApiSettings
from tests.cli_runner import ECHO_AGENTS, assert_one_line_error, at, run
from tests.conftest import Engine, eventually
from tests.daemon import Daemon
from tests.http_helpers import serving

NOPE = {"tasks": [{"id": "t", "agent": "nope"}]}


def spec_file(tmp_path: Path, spec: object) -> str:
    path = tmp_path / "spec.json"
    path.write_bytes(orjson.dumps(spec))
    return str(path)


async def test_submit_of_an_agent_neither_registered_nor_served_is_refused_naming_task_and_agent(
    redis_url: str, keyspace: Keyspace, redis: Redis, tmp_path: Path
) -> None:
    where = at(redis_url, keyspace)
    result = await run("submit", spec_file(tmp_path, NOPE), *ECHO_AGENTS, *where)
    assert_one_line_error(
        result, "error: task 't': unknown agent 'nope': no worker serves it, and it is not one "
    )
    assert result.code == 1
    assert [k async for k in redis.scan_iter(match=f"{{{keyspace.namespace}:*")] == []


async def test_submit_of_an_agent_named_with_allow_agent_is_accepted(
    redis_url: str, keyspace: Keyspace, tmp_path: Path
) -> None:
    where = at(redis_url, keyspace)
    result = await run("submit", spec_file(tmp_path, NOPE), "--allow-agent", "nope", *where)
    assert result.code == 0, result
    two = {"tasks": [{"id": "t", "agent": "nope"}, {"id": "u", "agent": "other"}]}
    env = {"STREAMPROC_ALLOW_AGENTS": "nope,other"}  # commas, as the other lists take
    result = await run("submit", spec_file(tmp_path, two), *where, env=env)
    assert result.code == 0, result


async def test_an_allowed_agent_that_is_no_agent_name_is_refused_in_one_line(
    redis_url: str, keyspace: Keyspace, tmp_path: Path
) -> None:
    for bad in ("no pe", ""):
        result = await run(
            "submit", spec_file(tmp_path, NOPE), "--allow-agent", bad, *at(redis_url, keyspace)
        )
        assert_one_line_error(result, f"error: Invalid value for '--allow-agent': {bad!r} is not")
        assert result.code == 2, result


async def test_submit_of_an_agent_a_live_worker_serves_is_accepted_without_importing_it(
    engine: Engine, redis_url: str, keyspace: Keyspace, redis: Redis, tmp_path: Path
) -> None:
    stream = keyspace.tasks(0, "echo")

    async def served() -> bool:
        return await redis.exists(stream) and any(
            g["consumers"] for g in await redis.xinfo_groups(stream)
        )

    await eventually(served)
    spec = {"tasks": [{"id": "t", "agent": "echo"}]}
    result = await run("submit", spec_file(tmp_path, spec), *at(redis_url, keyspace))
    assert result.code == 0, result


async def test_the_api_refuses_an_agent_neither_registered_nor_served_with_400(
    redis_url: str, keyspace: Keyspace
) -> None:
    async with (
        Client(redis_url, ClientSettings(keyspace=keyspace)) as client,
        serving(client, ApiSettings()) as http,
    ):
        response = await http.post("/workflows", json=NOPE)
        assert response.status == 400
        error = (await response.json())["error"]
        assert error.startswith("task 't': unknown agent 'nope'"), error
        accepted = await http.post("/workflows", json={"tasks": [{"id": "t", "agent": "echo"}]})
        assert accepted.status == 201


async def test_status_counts_backlog_without_a_group_as_lag_and_flags_it(
    redis_url: str, keyspace: Keyspace
) -> None:
    async with Client(redis_url, ClientSettings(keyspace=keyspace)) as client:
        await client.submit_many([NOPE, NOPE])
    rows = await run("status", "--json", *at(redis_url, keyspace))
    assert rows.code == 0, rows
    nope = next(r for r in map(orjson.loads, rows.out.splitlines()) if r.get("agent") == "nope")
    assert (nope["lag"], nope["consumers"], nope["unserved"]) == (2, 0, True)
    table = await run("status", *at(redis_url, keyspace))
    assert "no consumer serves nope: 2 tasks waiting" in table.out.splitlines()


async def serving_line(daemon: Daemon) -> str:
    async def line() -> str:
        return next((x for x in daemon.log_text().splitlines() if x.startswith("serving ")), "")

    try:
        return await eventually(line)
    finally:
        daemon.signal(signal.SIGTERM)
        await daemon.wait()


async def test_up_serves_only_the_imported_agents_not_the_bundled_ones(
    redis_url: str, keyspace: Keyspace
) -> None:
    up = Daemon(redis_url, keyspace.namespace, "up", "--import", "streamproc.testing.agents")
    line = await serving_line(up)
    assert "planning" not in line and "description" not in line, line
    assert "echo" in line and "flaky" in line, line  # Daemon imports the test agents too


async def test_up_serves_an_entry_point_agent_when_named_with_agent(
    redis_url: str, keyspace: Keyspace
) -> None:
    up = Daemon(redis_url, keyspace.namespace, "up", "--agent", "planning")
    line = await serving_line(up)
    assert "planning" in line and "description" not in line, line
    assert "echo" in line, line  # Daemon imports the test agents
