"""Query parameters: every route takes only those its OpenAPI operation lists, one value each,
and refuses any other with a 400 naming it and the ones it takes, before doing anything.  A
misspelt parameter that was ignored purged every dead letter of an agent (``?befor=``) or
dropped a cancel's reason (``?rason=``)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from streamproc import Client, Keyspace
from streamproc.http.auth import ApiSettings
from streamproc.http.dashboard import DASHBOARD_NEEDS
from streamproc.http.openapi import PATHS
from tests.http_helpers import AUTH, CHAIN, TOKEN, Http, serving

PLACEHOLDER = re.compile(r"\{(\w+)\}")
FILLED = {"id": "wf-1", "task": "t", "name": "app.js", "agent": "fixable", "entry_id": "1-0"}
RAW = {"v": "1", "agent": "fixable", "reason": "payload trimmed before ack"}


@pytest.fixture
async def http(client: Client) -> AsyncIterator[Http]:
    async with serving(client, ApiSettings.with_tokens([TOKEN])) as test_client:
        yield test_client


async def answer(http: Http, method: str, path: str) -> tuple[int, dict[str, str]]:
    response = await http.request(method, path, headers=AUTH)
    return response.status, await response.json()


def every_route() -> list[tuple[str, str, list[str]]]:
    """Each route of the API and the dashboard, as ``(METHOD, path, query names)``."""
    routes = [
        (method.upper(), path, [p["name"] for p in op.get("parameters", []) if p["in"] == "query"])
        for path, item in PATHS.items()
        for method, op in item.items()
    ]
    return routes + [(method, path, []) for method, path in DASHBOARD_NEEDS]


@pytest.mark.parametrize(("method", "template", "names"), every_route())
async def test_every_route_refuses_a_parameter_it_does_not_list_naming_those_it_takes(
    http: Http, method: str, template: str, names: list[str]
) -> None:
    """Checked before the handler runs: even a route that would 404 or act says why first."""
    path = PLACEHOLDER.sub(lambda m: FILLED[m.group(1)], template)
    status, body = await answer(http, method, f"{path}?bogus=1")
    takes = f"use {', '.join(sorted(names))}" if names else "this route takes none"
    assert (status, body) == (400, {"error": f"unknown parameter 'bogus': {takes}"})


@pytest.mark.parametrize(
    ("method", "path", "error"),
    [
        ("GET", "/dead/fixable?limit=-1", "unknown parameter 'limit': this route takes none"),
        ("GET", "/workflows/wf-1/events?bogus=1", "unknown parameter 'bogus': use token"),
        ("POST", "/workflows/wf-1/cancel?rason=x", "unknown parameter 'rason': use reason"),
        ("POST", "/dead/fixable/purge?befor=1-0", "unknown parameter 'befor': use before"),
        ("POST", "/dead/fixable/purge?before=1-0&before=2-0", "parameter 'before' given more"),
        ("POST", "/workflows/wf-1/cancel?reason=a&reason=b", "parameter 'reason' given more"),
        ("GET", "/workflows/wf-1/events?token=a&token=b", "parameter 'token' given more"),
    ],
)
async def test_the_reported_parameters_are_refused_in_one_line(
    http: Http, method: str, path: str, error: str
) -> None:
    status, body = await answer(http, method, path)
    assert status == 400 and body["error"].startswith(error), body


async def test_a_misspelt_purge_bound_purges_nothing(
    http: Http, redis: Redis, keyspace: Keyspace
) -> None:
    """``?befor=`` was ignored, and the purge took every dead letter instead of those before."""
    first, second = [(await redis.xadd(keyspace.dead(0, "fixable"), RAW)).decode() for _ in "ab"]
    purge = "/dead/fixable/purge"
    assert (await answer(http, "POST", f"{purge}?befor={second}"))[0] == 400
    assert (await answer(http, "POST", f"{purge}?before={first}&before={second}"))[0] == 400
    listed = await (await http.get("/dead/fixable", headers=AUTH)).json()
    assert [row["id"] for row in listed] == [first, second]
    assert await answer(http, "POST", f"{purge}?before={second}") == (200, {"purged": 1})


async def test_a_misspelt_cancel_reason_leaves_the_workflow_running(
    client: Client, http: Http
) -> None:
    """``?rason=`` cancelled the workflow and dropped the reason; now it is refused, and the
    reason spelt right is the one kept."""
    workflow_id = await client.submit(CHAIN)  # no engine here: it stays running
    assert (await answer(http, "POST", f"/workflows/{workflow_id}/cancel?rason=x"))[0] == 400
    assert (await client.get(workflow_id)).status == "running"
    path = f"/workflows/{workflow_id}/cancel?reason=typo+fixed"
    assert await answer(http, "POST", path) == (200, {"cancelled": True})
    state = await client.get(workflow_id)
    assert (state.status, state.reason) == ("cancelled", "typo fixed")
