"""Security check V1: open event streams never starve the HTTP API's other requests, and a
token or tenant past its cap of concurrent streams gets 429 with ``Retry-After``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer

from streamproc import Client
from streamproc.http.app import make_app
from streamproc.http.auth import ApiSettings
from streamproc.http.tokens import parse_entry
from tests.conftest import eventually
from tests.http_helpers import CHAIN

TENANTS = ("acme", "globex", "initech")
TOKENS_EACH = 2
STREAMS_EACH = 20  # 3 tenants x 2 tokens x 20 = 120 streams, past redis-py's old limit of 100
OTHER = "other-tenant-token-0001"


def token(tenant: str, number: int) -> str:
    return f"{tenant}-stream-token-{number:04d}"


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def settings(**caps: int) -> ApiSettings:
    entries = [f"{token(t, n)} tenant={t}" for t in TENANTS for n in range(TOKENS_EACH)]
    entries.append(f"{OTHER} tenant=other")
    credentials = [parse_entry(entry, f"entry {i}") for i, entry in enumerate(entries)]
    return ApiSettings.with_credentials(credentials, heartbeat=0.5, **caps)


@pytest.fixture
async def base(client: Client) -> AsyncIterator[str]:
    caps = {"max_streams_per_token": STREAMS_EACH, "max_streams_per_tenant": 50}
    async with TestServer(make_app(client, settings(**caps))) as server:
        yield str(server.make_url("")).rstrip("/")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        yield http


async def submitted(http: aiohttp.ClientSession, base: str, value: str) -> str:
    """A workflow that stays running (no worker serves it), submitted with ``value``."""
    headers = bearer(value) | {"Content-Type": "application/json"}
    async with http.post(f"{base}/workflows", data=orjson.dumps(CHAIN), headers=headers) as r:
        assert r.status == 201, await r.text()
        return str((await r.json())["id"])


async def open_stream(
    stack: AsyncExitStack, http: aiohttp.ClientSession, url: str, value: str
) -> aiohttp.ClientResponse:
    """An event stream, open until ``stack`` closes, once its first event has come."""
    response = await stack.enter_async_context(http.get(url, headers=bearer(value)))
    assert response.status == 200, await response.text()
    async with asyncio.timeout(10):
        assert (await response.content.readuntil(b"\n\n")).startswith(b"id: ")
    return response


async def test_120_open_event_streams_leave_another_tenants_requests_answering_promptly(
    base: str, session: aiohttp.ClientSession
) -> None:
    async with AsyncExitStack() as stack:
        opened = []
        for tenant in TENANTS:
            workflow = await submitted(session, base, token(tenant, 0))
            url = f"{base}/workflows/{workflow}/events"
            for number in range(TOKENS_EACH):  # 20 at a time: a burst is not what is tested
                value = token(tenant, number)
                batch = [open_stream(stack, session, url, value) for _ in range(STREAMS_EACH)]
                opened += await asyncio.gather(*batch)
        assert len(opened) == 120
        async with asyncio.timeout(2):
            own = await submitted(session, base, OTHER)
            for path in (f"/workflows/{own}", "/agents", f"/workflows/{own}/events"):
                async with session.get(f"{base}{path}", headers=bearer(OTHER)) as response:
                    assert response.status == 200, (path, await response.text())
                    if path.endswith("/events"):
                        assert (await response.content.readuntil(b"\n\n")).startswith(b"id: ")


async def test_a_token_past_its_stream_cap_gets_429_with_retry_after_and_may_open_one_later(
    base: str, session: aiohttp.ClientSession
) -> None:
    value = token("acme", 0)
    url = f"{base}/workflows/{await submitted(session, base, value)}/events"
    async with AsyncExitStack() as stack:
        streams = [await open_stream(stack, session, url, value) for _ in range(STREAMS_EACH)]
        async with session.get(url, headers=bearer(value)) as refused:
            assert refused.status == 429
            assert int(refused.headers["Retry-After"]) > 0
            assert "streams" in (await refused.json())["error"]
        streams[0].close()

        async def admitted() -> bool:
            async with session.get(url, headers=bearer(value)) as response:
                return response.status == 200

        await eventually(admitted, timeout=5)  # the closed stream stops counting


async def test_a_tenant_past_its_stream_cap_gets_429_even_from_a_fresh_token(
    client: Client, session: aiohttp.ClientSession
) -> None:
    caps = {"max_streams_per_token": 5, "max_streams_per_tenant": 6}
    async with TestServer(make_app(client, settings(**caps))) as server:
        base = str(server.make_url("")).rstrip("/")
        url = f"{base}/workflows/{await submitted(session, base, token('acme', 0))}/events"
        async with AsyncExitStack() as stack:
            for number, count in ((0, 5), (1, 1)):
                for _ in range(count):
                    await open_stream(stack, session, url, token("acme", number))
            async with session.get(url, headers=bearer(token("acme", 1))) as refused:
                assert refused.status == 429 and "Retry-After" in refused.headers
            async with session.get(url, headers=bearer(token("globex", 0))) as other:
                assert other.status == 404  # another tenant's workflow: its own cap untouched


async def test_event_tokens_open_no_more_streams_than_the_token_that_asked_for_them(
    base: str, session: aiohttp.ClientSession
) -> None:
    """Each event token was its own caller to the cap: a token at its cap asked for a fresh
    event token a second and held as many streams as it liked (an operator, whom no tenant
    cap bounds, without limit)."""
    value = token("acme", 0)
    workflow = await submitted(session, base, value)
    url = f"{base}/workflows/{workflow}/events"

    async def event_token() -> str:
        async with session.post(f"{url}-token", headers=bearer(value)) as response:
            assert response.status == 200, await response.text()
            return str((await response.json())["token"])

    async with AsyncExitStack() as stack:
        for _ in range(STREAMS_EACH):
            response = await stack.enter_async_context(
                session.get(url, params={"token": await event_token()})
            )
            assert response.status == 200, await response.text()
        async with session.get(url, params={"token": await event_token()}) as refused:
            assert refused.status == 429, await refused.text()
        async with session.get(url, headers=bearer(value)) as refused:
            assert refused.status == 429  # the streams its event tokens opened count as its own
        async with session.get(url, headers=bearer(token("acme", 1))) as other:
            assert other.status == 200  # another token of the tenant: a cap of its own
