"""Bounded reads (issue 18, V2): ``GET /workflows/{id}`` and ``streamproc show`` elide a task
result past 64 KiB as ``{"elided": true, "bytes": N}``, and one task's result is fetched whole
from ``GET /workflows/{id}/tasks/{task}/result`` or ``show ID --result TASK``; its input from
``GET /workflows/{id}/tasks/{task}/input``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from streamproc import Client, Keyspace
from streamproc.http.auth import ApiSettings
from streamproc.http.tokens import parse_tokens
from tests.cli_runner import at, run
from tests.conftest import Engine
from tests.http_helpers import Http, serving

ACME = "acme-token-0123456789"
GLOBEX = "globex-token-0123456789"
TOKENS = f"{ACME} tenant=acme\n{GLOBEX} tenant=globex\n"
LARGE = "x" * (100 << 10)  # echoed back: a 100 KiB result, past the 64 KiB shown inline
SPEC = {
    "id": "wide",
    "tasks": [
        {"id": "large", "agent": "echo", "input": LARGE},
        {"id": "small", "agent": "echo", "input": 7},
    ],
}


@pytest.fixture
async def http(client: Client) -> AsyncIterator[Http]:
    settings = ApiSettings.with_credentials(parse_tokens(TOKENS, "\n", "tokens"))
    async with serving(client, settings) as test_client:
        yield test_client


async def call(http: Http, method: str, path: str, token: str, body: Any = None) -> Any:
    data = None if body is None else orjson.dumps(body)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    response = await http.request(method, path, data=data, headers=headers)
    return response.status, await response.json()


async def completed(client: Client, http: Http) -> None:
    status, _ = await call(http, "POST", "/workflows", ACME, SPEC)
    assert status == 201
    state = await client.wait("acme.wide", timeout=20)
    assert state.status == "completed", state.reason


async def test_a_result_past_64_kib_is_elided_in_the_workflow_and_served_whole_on_its_own(
    engine: Engine, client: Client, http: Http
) -> None:
    await completed(client, http)
    status, state = await call(http, "GET", "/workflows/wide", ACME)
    assert status == 200
    results = {t["id"]: t["result"] for t in state["tasks"]}
    assert results == {"large": {"elided": True, "bytes": len(LARGE) + 2}, "small": 7}

    assert await call(http, "GET", "/workflows/wide/tasks/large/result", ACME) == (200, LARGE)
    assert await call(http, "GET", "/workflows/wide/tasks/small/result", ACME) == (200, 7)


async def test_a_task_result_is_404_for_an_unknown_task_or_another_tenants_workflow(
    engine: Engine, client: Client, http: Http
) -> None:
    await completed(client, http)
    status, body = await call(http, "GET", "/workflows/wide/tasks/nope/result", ACME)
    assert (status, body["error"]) == (404, "unknown task 'nope' in workflow 'wide'")
    status, body = await call(http, "GET", "/workflows/wide/tasks/large/result", GLOBEX)
    assert status == 404 and "wide" in body["error"] and "acme" not in body["error"]
    status, body = await call(http, "GET", "/workflows/gone/tasks/large/result", ACME)
    assert status == 404


async def test_a_task_input_is_served_on_its_own_and_404_for_an_unknown_task_or_tenant(
    engine: Engine, client: Client, http: Http
) -> None:
    await completed(client, http)
    assert await call(http, "GET", "/workflows/wide/tasks/large/input", ACME) == (200, LARGE)
    assert await call(http, "GET", "/workflows/wide/tasks/small/input", ACME) == (200, 7)
    status, body = await call(http, "GET", "/workflows/wide/tasks/nope/input", ACME)
    assert (status, body["error"]) == (404, "unknown task 'nope' in workflow 'wide'")
    status, body = await call(http, "GET", "/workflows/wide/tasks/large/input", GLOBEX)
    assert (status, body["error"]) == (404, "workflow 'wide' not found")
    status, _ = await call(http, "GET", "/workflows/bad%20id/tasks/large/input", ACME)
    assert status == 400


async def test_show_elides_a_large_result_and_show_result_prints_it_whole(
    engine: Engine, client: Client, redis_url: str, keyspace: Keyspace
) -> None:
    workflow_id = await client.submit({"tasks": SPEC["tasks"]})
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    shown = await run("show", workflow_id, "--json", *at(redis_url, keyspace))
    assert shown.code == 0, shown.err
    results = {t["id"]: t["result"] for t in orjson.loads(shown.out)["tasks"]}
    assert results == {"large": {"elided": True, "bytes": len(LARGE) + 2}, "small": 7}

    whole = await run("show", workflow_id, "--result", "large", *at(redis_url, keyspace))
    assert whole.code == 0, whole.err
    assert orjson.loads(whole.out) == LARGE
    unknown = await run("show", workflow_id, "--result", "nope", *at(redis_url, keyspace))
    assert unknown.code != 0 and "unknown task 'nope'" in unknown.err, unknown


async def test_a_declared_waits_input_is_served_though_it_runs_no_agent(
    engine: Engine, client: Client, http: Http
) -> None:
    spec = {"id": "gated", "tasks": [{"id": "approve", "wait_for": "approval", "input": 3}]}
    assert (await call(http, "POST", "/workflows", ACME, spec))[0] == 201
    assert await call(http, "GET", "/workflows/gated/tasks/approve/input", ACME) == (200, 3)
    status, body = await call(http, "GET", "/workflows/gated/tasks/nope/input", ACME)
    assert (status, body["error"]) == (404, "unknown task 'nope' in workflow 'gated'")
