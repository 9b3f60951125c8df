"""Cross-origin calls: off unless origins are allowed; an allowed origin's preflight is
answered without a token, and only an allowed origin is named back."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import aiohttp
import pytest

from streamproc import Client, Keyspace
from streamproc.errors import ConfigError
from streamproc.http.auth import ApiSettings
from streamproc.testing.embedded import free_port
from tests.cli_runner import STREAMPROC, TEST_AGENTS, at, cli_env
from tests.conftest import eventually
from tests.http_helpers import AUTH, GATED, TOKEN, Http, healthy, serving

ALLOWED = "https://dash.example.com"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization",
}


@pytest.fixture
async def http(client: Client) -> AsyncIterator[Http]:
    settings = ApiSettings.with_tokens([TOKEN], cors_origins=(ALLOWED,))
    async with serving(client, settings) as test_client:
        yield test_client


async def test_an_allowed_origins_preflight_is_answered_without_a_token(http: Http) -> None:
    response = await http.options("/workflows", headers={"Origin": ALLOWED, **PREFLIGHT})
    assert response.status == 204, await response.text()
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert response.headers["Vary"] == "Origin"


async def test_a_preflight_allows_every_method_a_route_answers(http: Http) -> None:
    """DELETE included: a dashboard on an allowed origin purges a dead letter with it."""
    headers = {"Origin": ALLOWED, "Access-Control-Request-Method": "DELETE"}
    response = await http.options("/dead/search/1-0", headers=headers)
    assert response.status == 204, await response.text()
    allowed = {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    routed = {route.method for route in http.server.app.router.routes()} - {"HEAD"}
    assert "DELETE" in routed and routed <= allowed, (routed, allowed)


async def test_an_allowed_origin_is_named_back_on_replies_and_errors(http: Http) -> None:
    for headers, status in (({**AUTH}, 200), ({}, 401)):
        response = await http.get("/agents", headers={"Origin": ALLOWED, **headers})
        assert response.status == status
        assert response.headers["Access-Control-Allow-Origin"] == ALLOWED


async def test_another_origin_gets_no_cors_header_and_its_preflight_needs_a_token(
    http: Http,
) -> None:
    other = {"Origin": "https://evil.example.com"}
    response = await http.options("/workflows", headers={**other, **PREFLIGHT})
    assert response.status == 401 and "Access-Control-Allow-Origin" not in response.headers
    response = await http.get("/agents", headers={**other, **AUTH})
    assert response.status == 200 and "Access-Control-Allow-Origin" not in response.headers


async def test_without_allowed_origins_no_reply_carries_cors_headers(client: Client) -> None:
    async with serving(client, ApiSettings.with_tokens([TOKEN])) as http:
        response = await http.options("/workflows", headers={"Origin": ALLOWED, **PREFLIGHT})
        assert response.status == 401
        assert not [h for h in response.headers if h.startswith("Access-Control")]


@pytest.mark.parametrize("origin", ["*", "dash.example.com", "https://dash.example.com/", "null"])
def test_an_allowed_origin_must_be_a_scheme_and_host(origin: str) -> None:
    with pytest.raises(ConfigError, match="CORS origin"):
        ApiSettings.with_tokens([TOKEN], cors_origins=(origin,))


async def test_the_api_verb_takes_cors_origins_and_stream_caps_from_flags_and_environment(
    redis_url: str, keyspace: Keyspace
) -> None:
    port, other = free_port(), "http://localhost:3000"
    flags = ["--port", str(port), "--cors-origin", ALLOWED, "--max-streams-per-token", "1"]
    env = {**cli_env(), "STREAMPROC_API_CORS_ORIGINS": other, "STREAMPROC_API_TOKENS": TOKEN}
    process = await asyncio.create_subprocess_exec(
        str(STREAMPROC), "api", *flags, "--import", TEST_AGENTS, *at(redis_url, keyspace), env=env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await eventually(lambda: healthy(session, base))
            for origin in (ALLOWED, other):
                headers = {"Origin": origin, **PREFLIGHT}
                async with session.options(f"{base}/workflows", headers=headers) as r:
                    assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == origin
            async with session.post(f"{base}/workflows", json=GATED, headers=AUTH) as r:
                events = f"{base}/workflows/{(await r.json())['id']}/events"
            async with session.get(events, headers=AUTH) as first:
                assert first.status == 200
                async with session.get(events, headers=AUTH) as second:
                    assert second.status == 429, await second.text()
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
