"""Scopes and tenants of the HTTP API's bearer tokens: a token without the scope a route needs
is a 403 naming it; a tenant token sees only its tenant's workflows, by the ids it gave them,
and another tenant's workflow is as unknown to it as one nobody submitted."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from streamproc import Client, Keyspace
from streamproc.errors import ConfigError
from streamproc.http.app import make_app
from streamproc.http.auth import OPEN, ApiSettings, Grant
from streamproc.http.dashboard import DASHBOARD_NEEDS
from streamproc.http.openapi import needs
from streamproc.http.tokens import parse_tokens
from streamproc.testing.embedded import free_port
from tests.cli_runner import (
    ECHO_AGENTS,
    STREAMPROC,
    assert_one_line_error,
    at,
    cli_env,
    run_sync,
)
from tests.conftest import Engine, eventually
from tests.http_helpers import CHAIN, GATED, Http, healthy, serving, sse_frames

OPERATOR = "operator-token-0123456789"
READER = "reader-token-0123456789"
SUBMITTER = "submitter-token-0123456789"
ACME = "acme-token-0123456789"
GLOBEX = "globex-token-0123456789"
TOKENS = f"""# an operator, two narrow tokens, two tenants
{OPERATOR}
{READER} scopes=read
{SUBMITTER} scopes=submit
{ACME} tenant=acme
{GLOBEX} scopes=read+submit tenant=globex
"""
OTHER = {"name": "other", "tasks": [{"id": "only", "agent": "echo", "input": "globex"}]}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def http(client: Client) -> AsyncIterator[Http]:
    settings = ApiSettings.with_credentials(parse_tokens(TOKENS, "\n", "tokens"))
    async with serving(client, settings) as test_client:
        yield test_client


async def call(
    http: Http, method: str, path: str, token: str, body: Any = None, **headers: str
) -> tuple[int, Any]:
    data = None if body is None else orjson.dumps(body)
    headers = {**auth(token), **headers, "Content-Type": "application/json"}
    response = await http.request(method, path, data=data, headers=headers)
    return response.status, await response.json()


# -- the token file --------------------------------------------------------------------------


def test_each_entry_grants_its_scopes_and_tenant_and_a_bare_token_grants_everything() -> None:
    credentials = parse_tokens(TOKENS, "\n", "tokens")
    assert [(c.grant, c.where) for c in credentials] == [
        (Grant(frozenset({"read", "submit", "admin"})), "tokens line 2"),
        (Grant(frozenset({"read"})), "tokens line 3"),
        (Grant(frozenset({"submit"})), "tokens line 4"),
        (Grant(frozenset({"read", "submit"}), "acme"), "tokens line 5"),
        (Grant(frozenset({"read", "submit"}), "globex"), "tokens line 6"),
    ]
    settings = ApiSettings.with_credentials(
        [*credentials, *parse_tokens(f"{ACME} tenant=acme", ",", "env")]
    )
    assert len(settings.credentials) == 5  # the same token twice, with the same grant: once
    assert not any(token in repr(settings) for token in (OPERATOR, READER, ACME))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (f"{READER} scopes=read+write", "unknown scope 'write' (use read, submit, admin)"),
        (f"{READER} scopes=", "unknown scope '' (use read, submit, admin)"),
        (f"{READER} tenant=acme.corp", "invalid tenant 'acme.corp': use 1-64 characters"),
        (f"{READER} tenant=", "invalid tenant '': use 1-64 characters"),
        (f"{READER} tenant=acme scopes=read+admin", "a tenant token cannot have the admin"),
        (f"{READER} scopes=read scopes=submit", "scopes= given twice"),
        (f"{READER} {SUBMITTER}", "expected TOKEN [scopes=S+S...] [tenant=NAME], one token"),
        (f"{READER} role={SUBMITTER}", "expected TOKEN [scopes=S+S...] [tenant=NAME], one token"),
        ("short-token scopes=read", "API tokens must be at least 16 characters"),
    ],
)
def test_a_malformed_entry_is_refused_naming_its_line_and_never_a_token(
    entry: str, message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_tokens(f"{OPERATOR}\n{entry}\n", "\n", "tokens")
    assert str(refused.value).startswith(f"tokens line 2: {message}"), refused.value
    assert not any(token in str(refused.value) for token in (READER, SUBMITTER, "short-token"))


def test_one_token_with_two_grants_is_refused_naming_both_entries() -> None:
    credentials = parse_tokens(f"{READER} scopes=read", ",", "env")
    credentials += parse_tokens(f"\n{READER} scopes=submit", "\n", "file")
    with pytest.raises(ConfigError, match=r"^env entry 1 and file line 2 give one token"):
        ApiSettings.with_credentials(credentials)


# -- scopes ----------------------------------------------------------------------------------


async def test_each_route_needs_the_scope_the_document_names(client: Client) -> None:
    assert needs() == {
        ("GET", "/healthz"): OPEN,
        ("GET", "/openapi.json"): "read",
        ("GET", "/metrics"): "read",
        ("GET", "/agents"): "read",
        ("GET", "/search"): "read",
        ("GET", "/workflows"): "read",
        ("GET", "/workflows/{id}"): "read",
        ("GET", "/workflows/{id}/tasks/{task}/result"): "read",
        ("GET", "/workflows/{id}/tasks/{task}/input"): "read",
        ("GET", "/workflows/{id}/events"): "read",
        ("POST", "/workflows/{id}/events-token"): "read",
        ("POST", "/workflows"): "submit",
        ("POST", "/workflows/{id}/cancel"): "submit",
        ("POST", "/workflows/{id}/signals/{name}"): "submit",
        ("GET", "/dead/{agent}"): "admin",
        ("GET", "/dead/{agent}/{entry_id}"): "admin",
        ("DELETE", "/dead/{agent}/{entry_id}"): "admin",
        ("POST", "/dead/{agent}/purge"): "admin",
        ("POST", "/dead/{agent}/{entry_id}/requeue"): "admin",
    }
    routes = make_app(client, ApiSettings()).router.routes()
    served = {(r.method, r.resource.canonical) for r in routes if r.resource is not None}
    assert {route for route in served if route[0] != "HEAD"} == set(needs()) | set(DASHBOARD_NEEDS)
    assert set(DASHBOARD_NEEDS.values()) == {OPEN}  # the dashboard's files hold no data


@pytest.mark.parametrize(
    ("token", "method", "path", "scope"),
    [
        (SUBMITTER, "GET", "/workflows/some-id", "read"),
        (SUBMITTER, "GET", "/agents", "read"),
        (SUBMITTER, "GET", "/search", "read"),
        (SUBMITTER, "GET", "/workflows", "read"),
        (READER, "POST", "/workflows", "submit"),
        (READER, "POST", "/workflows/some-id/cancel", "submit"),
        (READER, "GET", "/dead/echo", "admin"),
        (ACME, "POST", "/dead/echo/1-1/requeue", "admin"),
        (READER, "DELETE", "/dead/echo/1-1", "admin"),
        (ACME, "POST", "/dead/echo/purge", "admin"),
    ],
)
async def test_a_token_without_the_routes_scope_is_403_naming_it(
    http: Http, token: str, method: str, path: str, scope: str
) -> None:
    response = await http.request(method, path, headers=auth(token), json=CHAIN)
    assert response.status == 403
    assert await response.json() == {
        "error": f"this token lacks the {scope!r} scope",
        "scope": scope,
    }
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer realm="streamproc", error="insufficient_scope", scope="{scope}"'
    )


async def test_a_token_with_the_scope_passes_and_an_unknown_token_is_still_401(http: Http) -> None:
    assert (await call(http, "GET", "/workflows/some-id", READER))[0] == 404
    assert (await call(http, "POST", "/workflows", SUBMITTER, CHAIN))[0] == 201
    assert (await call(http, "GET", "/dead/echo", OPERATOR)) == (200, [])
    status, body = await call(http, "GET", "/dead/echo", "unknown-token-0123456789")
    assert (status, body) == (401, {"error": "invalid bearer token"})
    assert (await http.get("/healthz")).status == 200
    head = await http.head("/agents", headers=auth(SUBMITTER))  # as its GET
    assert (head.status, head.headers["WWW-Authenticate"].endswith('scope="read"')) == (403, True)
    assert (await http.head("/agents", headers=auth(READER))).status == 200


# -- tenants ---------------------------------------------------------------------------------


async def test_two_tenants_submitting_one_id_get_a_workflow_each(
    engine: Engine, client: Client, http: Http
) -> None:
    named = {**CHAIN, "id": "order-1"}
    assert await call(http, "POST", "/workflows", ACME, named) == (201, {"id": "order-1"})
    assert await call(http, "POST", "/workflows", GLOBEX, {**OTHER, "id": "order-1"}) == (
        201,
        {"id": "order-1"},
    )
    assert await call(http, "POST", "/workflows", ACME, named) == (200, {"id": "order-1"})
    created = await http.post("/workflows", json={**CHAIN, "id": "order-2"}, headers=auth(ACME))
    assert (created.status, created.headers["Location"]) == (201, "/workflows/order-2")
    status, body = await call(http, "POST", "/workflows", ACME, {**OTHER, "id": "order-1"})
    assert (status, body) == (
        409,
        {"error": "workflow 'order-1' already exists with a different spec"},
    )

    for token, name in [(ACME, "chain"), (GLOBEX, "other")]:
        status, state = await call(http, "GET", "/workflows/order-1", token)
        assert (status, state["id"], state["name"]) == (200, "order-1", name)
    for stored, name in [("acme.order-1", "chain"), ("globex.order-1", "other")]:
        assert (await client.wait(stored, timeout=20)).name == name
        status, state = await call(http, "GET", f"/workflows/{stored}", OPERATOR)
        assert (status, state["id"], state["status"]) == (200, stored, "completed")


async def test_another_tenants_workflow_is_404_like_one_nobody_submitted(
    client: Client, http: Http
) -> None:
    routes = [("GET", "/workflows/secret"), ("GET", "/workflows/secret/events")]
    routes += [("POST", "/workflows/secret/cancel")]

    async def as_globex() -> list[tuple[int, bytes]]:
        replies = []
        for method, path in routes:
            response = await http.request(method, path, headers=auth(GLOBEX))
            replies.append((response.status, await response.read()))
        return replies

    before = await as_globex()
    assert await call(http, "POST", "/workflows", ACME, {**GATED, "id": "secret"}) == (
        201,
        {"id": "secret"},
    )
    assert await as_globex() == before  # no existence oracle, body included
    assert before[0] == (404, b'{"error":"workflow \'secret\' not found"}')
    assert all(status == 404 for status, _ in before)
    assert (await call(http, "GET", "/workflows/acme.secret", GLOBEX))[0] == 404  # no forging
    assert (await client.get("acme.secret")).status == "running"  # globex's cancel did nothing
    assert (await call(http, "GET", "/workflows/secret", ACME))[0] == 200


async def test_a_tenant_sees_its_own_ids_in_replies_and_events_never_the_stored_ones(
    engine: Engine, client: Client, http: Http
) -> None:
    status, body = await call(http, "POST", "/workflows", ACME, CHAIN)  # the API makes the id
    assert status == 201 and "." not in body["id"], body
    given = body["id"]
    assert (await client.wait(f"acme.{given}", timeout=20)).status == "completed"
    response = await http.get(f"/workflows/{given}/events", headers=auth(ACME))
    async with asyncio.timeout(20):
        text = await response.text()
    frames = sse_frames(text)
    assert frames[-1]["event"] == "completed"
    assert {orjson.loads(f["data"])["wf"] for f in frames} == {given}
    assert "acme." not in text
    cancelled = await call(http, "POST", f"/workflows/{given}/cancel", ACME)
    assert cancelled == (200, {"cancelled": False})
    response = await http.get(f"/workflows/acme.{given}/events", headers=auth(OPERATOR))
    async with asyncio.timeout(20):
        assert {orjson.loads(f["data"])["wf"] for f in sse_frames(await response.text())} == {
            f"acme.{given}"
        }


async def test_a_tenants_ids_are_checked_and_leave_room_for_its_name(http: Http) -> None:
    fits, over = "x" * (128 - len("acme.")), "x" * (128 - len("acme.") + 1)
    assert (await call(http, "POST", "/workflows", ACME, {**CHAIN, "id": fits}))[0] == 201
    status, body = await call(http, "POST", "/workflows", ACME, {**CHAIN, "id": over})
    assert (status, body["error"]) == (
        400,
        f"invalid workflow id {over!r}: at most 123 characters for this tenant",
    )
    for bad in ("no spaces", 7, "a/b"):
        status, body = await call(http, "POST", "/workflows", ACME, {**CHAIN, "id": bad})
        assert status == 400 and body["error"].startswith("invalid workflow id"), body
    assert (await call(http, "GET", f"/workflows/{over}", ACME))[0] == 400


# -- the verb --------------------------------------------------------------------------------


async def test_the_api_verb_serves_scoped_and_tenant_tokens_from_a_file(
    redis_url: str, keyspace: Keyspace, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKENS)
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        str(STREAMPROC),
        "api",
        "--port",
        str(port),
        "--tokens-file",
        str(tokens),
        *ECHO_AGENTS,
        *at(redis_url, keyspace),
        env=cli_env(),
        stderr=asyncio.subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await eventually(lambda: healthy(session, base))
            spec = {**CHAIN, "id": "from-the-verb"}
            async with session.post(f"{base}/workflows", json=spec, headers=auth(READER)) as r:
                assert (r.status, (await r.json())["scope"]) == (403, "submit")
            async with session.post(f"{base}/workflows", json=spec, headers=auth(ACME)) as r:
                assert (r.status, await r.json()) == (201, {"id": "from-the-verb"})
            async with session.get(f"{base}/workflows/from-the-verb", headers=auth(GLOBEX)) as r:
                assert r.status == 404
            path = f"{base}/workflows/acme.from-the-verb"
            async with session.get(path, headers=auth(OPERATOR)) as r:
                assert (r.status, (await r.json())["id"]) == (200, "acme.from-the-verb")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
        assert process.stderr is not None
        log = (await process.stderr.read()).decode()
        assert f"serving the HTTP API on http://127.0.0.1:{port} (5 token(s))" in log
        assert not any(token in log for token in (OPERATOR, READER, ACME))
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_the_api_verb_refuses_a_malformed_token_file_in_one_line(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{OPERATOR}\n\n{READER} scopes=read+write\n")
    result = run_sync("api", "--tokens-file", str(tokens))
    assert_one_line_error(result, f"error: {tokens} line 3: unknown scope 'write'")
    assert READER not in result.err and OPERATOR not in result.err

    result = run_sync("api", "--tokens-file", str(tokens), "--host", "0.0.0.0")  # noqa: S104
    assert_one_line_error(result, f"error: {tokens} line 3: unknown scope 'write'")


async def test_a_tenant_never_sees_worker_names_or_tracebacks_and_an_operator_does(
    engine: Engine, client: Client, http: Http
) -> None:
    spec = {"tasks": [{"id": "twice", "agent": "flaky", "input": {"fail": 1}}]}
    status, body = await call(http, "POST", "/workflows", ACME, spec)
    assert status == 201, body
    assert (await client.wait(f"acme.{body['id']}", timeout=20)).status == "completed"
    shown = {"tenant": (ACME, body["id"]), "operator": (OPERATOR, f"acme.{body['id']}")}
    seen = {}
    for who, (token, given) in shown.items():
        _, state = await call(http, "GET", f"/workflows/{given}", token)
        response = await http.get(f"/workflows/{given}/events", headers=auth(token))
        async with asyncio.timeout(20):
            seen[who] = (orjson.dumps(state).decode(), await response.text())
    [task] = orjson.loads(seen["operator"][0])["tasks"]
    worker = task["history"][0]["by"]
    assert worker and all(worker in text for text in seen["operator"]), seen["operator"]
    assert all(worker not in text for text in seen["tenant"]), seen["tenant"]
    [tenant_task] = orjson.loads(seen["tenant"][0])["tasks"]
    assert tenant_task["consumer"] == "" and "by" not in tenant_task["history"][0]
    # A traceback quotes the servers' paths: the tenant keeps the attempt's one-line error.
    failed = task["history"][0]
    assert 'File "' in failed["traceback"] and failed["error"], failed
    assert "traceback" not in tenant_task["history"][0], tenant_task
    assert tenant_task["history"][0]["error"] == failed["error"]
    assert 'File "' not in seen["tenant"][1], seen["tenant"][1]
