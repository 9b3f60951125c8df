"""A browser follows a workflow's events with a short-lived signed token in the URL, since its
EventSource cannot send a bearer header: the token opens that workflow's event stream, for
that tenant, until it expires, and nothing else, and it never reaches the access log."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from streamproc import Client
from streamproc.http.app import serve
from streamproc.http.auth import ApiSettings
from streamproc.http.event_tokens import EventTokens
from streamproc.http.tokens import parse_tokens
from streamproc.testing.embedded import free_port
from tests.conftest import Engine, eventually
from tests.http_helpers import CHAIN, Http, healthy, serving, sse_frames

ACME = "acme-token-0123456789"
GLOBEX = "globex-token-0123456789"
WRITER = "writer-token-0123456789"
TOKENS = f"{ACME} tenant=acme\n{GLOBEX} tenant=globex\n{WRITER} scopes=submit\n"
KEY = b"k" * 32


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def settings(**fields: object) -> ApiSettings:
    credentials = parse_tokens(TOKENS, "\n", "tokens")
    return ApiSettings.with_credentials(credentials, signing_key=KEY, **fields)


@pytest.fixture
async def http(client: Client) -> AsyncIterator[Http]:
    async with serving(client, settings()) as test_client:
        yield test_client


async def submitted(http: Http, token: str, workflow_id: str) -> None:
    response = await http.post("/workflows", json={**CHAIN, "id": workflow_id}, headers=auth(token))
    assert response.status in (200, 201), await response.text()


async def event_token(http: Http, token: str, workflow_id: str) -> str:
    response = await http.post(f"/workflows/{workflow_id}/events-token", headers=auth(token))
    body = await response.json()
    assert (response.status, body["expires_in"]) == (200, 60), body
    return str(body["token"])


async def test_an_event_token_opens_that_workflows_event_stream_without_a_bearer_header(
    engine: Engine, client: Client, http: Http
) -> None:
    await submitted(http, ACME, "order-1")
    token = await event_token(http, ACME, "order-1")
    assert "acme.order-1" not in token
    response = await http.get("/workflows/order-1/events", params={"token": token})
    assert response.status == 200, await response.text()
    async with asyncio.timeout(20):
        frames = sse_frames(await response.text())
    assert frames[-1]["event"] == "completed"
    assert '"wf":"order-1"' in frames[-1]["data"]


async def test_an_event_token_is_refused_for_another_workflow_tenant_route_or_once_expired(
    client: Client, http: Http
) -> None:
    for tenant, workflow_id in [(ACME, "order-1"), (ACME, "order-2"), (GLOBEX, "order-1")]:
        await submitted(http, tenant, workflow_id)
    token = await event_token(http, ACME, "order-1")
    expiry, _, issuer, signature = token.split(".")
    tokens = EventTokens(KEY)
    own = "/workflows/order-1/events"
    refused = [
        ("/workflows/order-2/events", token),  # another workflow of the same tenant
        (own, f"{expiry}.globex.{issuer}.{signature}"),  # globex's order-1
        (own, f"{int(expiry) + 3600}.acme.{issuer}.{signature}"),  # tampered expiry
        (own, f"{expiry}.acme.{'A' * len(issuer)}.{signature}"),  # another token's cap to count
        (own, token[:-2] + ("AA" if token[-2:] != "AA" else "BB")),
        (own, tokens.issue("acme.order-1", "acme", issuer, time.time() - 61)),
        (own, EventTokens(b"x" * 32).issue("acme.order-1", "acme", issuer)),
        (own, f"{expiry}.acme.{signature}"),  # the three parts 0.9.10 gave
        (own, "not-a-token"),
        ("/workflows/order-1", token),  # only the event stream takes one
    ]
    for path, presented in refused:
        response = await http.get(path, params={"token": presented})
        assert response.status == 401, (path, presented, await response.text())
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    expired = tokens.issue("acme.order-1", "acme", issuer, time.time() - 61)
    response = await http.get("/workflows/order-1/events", params={"token": expired})
    assert await response.json() == {"error": "event token expired: ask for a new one"}


async def test_an_event_token_is_given_only_for_a_workflow_the_caller_may_read(
    http: Http,
) -> None:
    await submitted(http, ACME, "order-1")
    for token, status in [(GLOBEX, 404), (WRITER, 403)]:
        response = await http.post("/workflows/order-1/events-token", headers=auth(token))
        assert response.status == status, await response.text()
    response = await http.post("/workflows/order-1/events-token")
    assert response.status == 401


async def test_an_event_token_never_reaches_the_access_log(
    engine: Engine, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    port, stop = free_port(), asyncio.Event()
    server = asyncio.create_task(serve(client, settings(port=port), stop))
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await eventually(lambda: healthy(session, base))
            url = f"{base}/workflows/logged/events"
            async with session.post(
                f"{base}/workflows", json=CHAIN | {"id": "logged"}, headers=auth(ACME)
            ):
                pass
            async with session.post(f"{url}-token", headers=auth(ACME)) as response:
                token = (await response.json())["token"]
            async with session.get(url, params={"token": token}) as response:
                assert response.status == 200
                await asyncio.wait_for(response.read(), 20)
    finally:
        stop.set()
        await server
    logged = caplog.text
    assert '"GET /workflows/logged/events" 200' in logged
    assert token not in logged and token.rsplit(".", 1)[1] not in logged
