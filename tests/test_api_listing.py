"""``GET /workflows``: a page of workflows newest first; a tenant token sees only its own,
by the ids it gave them, and pages through them alone; bad parameters are a one-line 400."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from streamproc import Client, ClientSettings, Keyspace
from streamproc.http.auth import ApiSettings
from streamproc.http.tokens import parse_tokens
from streamproc.ops import listing
from tests.http_helpers import Http, serving

OPERATOR = "operator-token-0123456789"
ACME = "acme-token-0123456789"
GLOBEX = "globex-token-0123456789"
SUBMITTER = "submitter-token-0123456789"
TOKENS = f"{OPERATOR}\n{ACME} tenant=acme\n{GLOBEX} tenant=globex\n{SUBMITTER} scopes=submit"
ONE = {"name": "one", "tasks": [{"id": "a", "agent": "echo", "input": 1}]}


@pytest.fixture
async def sharded(redis_url: str, keyspace: Keyspace) -> AsyncIterator[Client]:
    spread = Keyspace(keyspace.namespace, shards=2)
    async with Client(redis_url, ClientSettings(keyspace=spread)) as client:
        yield client


@pytest.fixture
async def http(sharded: Client) -> AsyncIterator[Http]:
    settings = ApiSettings.with_credentials(parse_tokens(TOKENS, "\n", "tokens"))
    async with serving(sharded, settings) as test_client:
        yield test_client


async def listed(http: Http, token: str, query: str = "") -> tuple[int, Any]:
    response = await http.get(f"/workflows{query}", headers={"Authorization": f"Bearer {token}"})
    return response.status, await response.json()


async def every_id(http: Http, token: str, query: str) -> list[str]:
    ids, cursor = [], None
    while True:
        status, page = await listed(http, token, query + (f"&cursor={cursor}" if cursor else ""))
        assert status == 200, page
        ids += [w["id"] for w in page["workflows"]]
        if page["cursor"] is None:
            return ids
        cursor = page["cursor"]


async def test_a_tenant_lists_its_own_workflows_by_the_ids_it_gave_them(
    http: Http, sharded: Client
) -> None:
    for i in range(4):
        await sharded.submit(ONE, f"acme.mine-{i}")
        await sharded.submit(ONE, f"globex.theirs-{i}")
    await sharded.cancel("acme.mine-2", "stop")

    assert await every_id(http, ACME, "?limit=3") == [f"mine-{i}" for i in (3, 2, 1, 0)]
    assert await every_id(http, GLOBEX, "?limit=2") == [f"theirs-{i}" for i in (3, 2, 1, 0)]
    status, page = await listed(http, ACME, "?status=cancelled")
    assert status == 200
    [only] = page["workflows"]
    assert only["id"] == "mine-2" and only["status"] == "cancelled" and only["reason"] == "stop"
    assert set(only) == {"id", "name", "status", "created", "ended", "tasks", "reason"}
    assert only["tasks"]["total"] == 1 and isinstance(only["ended"], int)
    assert page["cursor"] is None

    everyone = await every_id(http, OPERATOR, "?limit=5&name=one")
    assert sorted(everyone) == sorted(
        [f"acme.mine-{i}" for i in range(4)] + [f"globex.theirs-{i}" for i in range(4)]
    )
    assert (await listed(http, SUBMITTER))[0] == 403  # listing needs the read scope
    status, everything = await listed(http, OPERATOR, "?status=&name=&since=&limit=&cursor=")
    assert status == 200 and len(everything["workflows"]) == 8  # empty: no filter


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("?limit=0", "invalid limit 0: use 1 to 500"),
        ("?limit=501", "invalid limit 501: use 1 to 500"),
        ("?limit=ten", "invalid limit 'ten': use a whole number from 1 to 500"),
        ("?limit=-1", "invalid limit '-1': use a whole number from 1 to 500"),
        ("?status=done", "invalid status 'done': use running|completed|failed|cancelled"),
        ("?since=yesterday", "invalid since 'yesterday': use ms since the epoch or an ISO-8601"),
        ("?cursor=%25%25", "invalid cursor '%%': pass one a page returned"),
        ("?sort=name", "unknown parameter 'sort': use cursor, limit, name, since, status"),
        ("?limit=1&limit=2", "parameter 'limit' given more than once"),
    ],
)
async def test_bad_parameters_are_a_one_line_400(http: Http, query: str, error: str) -> None:
    status, body = await listed(http, OPERATOR, query)
    assert status == 400
    assert body["error"].startswith(error) and "\n" not in body["error"]


async def test_a_tenants_cursor_names_none_of_another_tenants_workflows(
    http: Http, sharded: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages that stop for their budget, among another tenant's workflows, still go on
    without gaps, and their cursors hold only the tenant's own ids."""
    monkeypatch.setattr(listing, "SCAN_BUDGET", 3)
    for i in range(3):
        await sharded.submit(ONE, f"acme.mine-{i}")
        for j in range(4):
            await sharded.submit(ONE, f"globex.theirs-{i}-{j}")
    ids, cursors, cursor = [], [], None
    while True:
        status, page = await listed(http, ACME, f"?cursor={cursor}" if cursor else "")
        assert status == 200, page
        ids += [w["id"] for w in page["workflows"]]
        if page["cursor"] is None:
            break
        cursor = page["cursor"]
        cursors.append(base64.urlsafe_b64decode(cursor).decode())
    assert ids == ["mine-2", "mine-1", "mine-0"]
    assert len(cursors) >= 2 and not any("globex" in c or "acme" in c for c in cursors)
