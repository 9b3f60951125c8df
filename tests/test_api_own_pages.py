"""Without tokens the API serves loopback clients, and only its own pages among the pages a
browser loads: another site's page can neither cancel nor purge (a body-less POST needs no
preflight), nor read through a DNS name rebound to 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from playwright.async_api import Browser

from streamproc import Client
from streamproc.http.auth import ApiSettings
from streamproc.testing.embedded import free_port
from tests.browser import needs_chromium, new_tab, served
from tests.http_helpers import AUTH, GATED, TOKEN, Http, serving

pytest_plugins = ["tests.browser_fixtures"]
ALLOWED = "https://dash.example.com"


@pytest.fixture
async def http(client: Client) -> AsyncIterator[Http]:
    async with serving(client, ApiSettings(cors_origins=(ALLOWED,))) as test_client:
        yield test_client


async def test_another_sites_page_cannot_cancel_or_purge(http: Http, client: Client) -> None:
    workflow_id = await client.submit(GATED)
    for path in (f"/workflows/{workflow_id}/cancel", "/dead/echo/purge"):
        response = await http.post(path, headers={"Origin": "https://evil.example"})
        assert response.status == 403, await response.text()
        assert (await response.json())["error"] == (
            "without tokens the API refuses requests from pages of 'https://evil.example'"
        )
    assert (await client.get(workflow_id)).status == "running"


async def test_a_host_that_is_not_loopback_is_refused(http: Http) -> None:
    """What a page on a DNS name rebound to 127.0.0.1 would send."""
    for host in ("evil.example.com", "evil.example.com:8080", "10.0.0.1"):
        response = await http.get("/agents", headers={"Host": host})
        assert response.status == 403, host
        assert (await response.json())["error"] == (
            f"without tokens the API answers loopback addresses only, not {host!r}"
        )
    for host in ("localhost", "LOCALHOST:8080", "127.0.0.1:1", "[::1]:8080", "app.localhost"):
        assert (await http.get("/agents", headers={"Host": host})).status == 200, host


async def test_its_own_pages_allowed_origins_and_clients_without_an_origin_pass(
    http: Http, client: Client
) -> None:
    own = f"http://{http.host}:{http.port}"
    for origin in (own, ALLOWED, None):
        workflow_id = await client.submit(GATED)
        headers = {} if origin is None else {"Origin": origin}
        response = await http.post(f"/workflows/{workflow_id}/cancel", headers=headers)
        assert response.status == 200, (origin, await response.text())
        assert (await client.get(workflow_id)).status == "cancelled"


async def test_with_tokens_the_bearer_decides(client: Client) -> None:
    """A browser sends no token a page did not give it: the origin need not be checked."""
    async with serving(client, ApiSettings.with_tokens([TOKEN])) as http:
        headers = {"Origin": "https://evil.example", "Host": "api.example.com"}
        assert (await http.get("/agents", headers=headers)).status == 401
        assert (await http.get("/agents", headers={**headers, **AUTH})).status == 200


@needs_chromium
async def test_in_chromium_a_page_of_another_origin_cannot_cancel_but_the_dashboard_can(
    browser: Browser, client: Client
) -> None:
    victim, kept = await client.submit(GATED), await client.submit(GATED)
    page = web.Application()
    page.router.add_get("/", elsewhere)
    runner = web.AppRunner(page)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with served(client, "") as base, new_tab(browser, base) as tab:
            await tab.page.goto(f"http://127.0.0.1:{port}/")
            sent = await tab.page.evaluate(
                "url => fetch(url, {method: 'POST', mode: 'no-cors'}).then(r => r.type)",
                f"{base}/workflows/{kept}/cancel",
            )
            assert sent == "opaque"  # the request went out and was answered
            assert (await client.get(kept)).status == "running"

            await tab.open("#/", token=None)  # the API's own page, same request
            status = await tab.page.evaluate(
                "url => fetch(url, {method: 'POST'}).then(r => r.status)",
                f"{base}/workflows/{victim}/cancel",
            )
            assert status == 200
            assert (await client.get(victim)).status == "cancelled"
    finally:
        await runner.cleanup()


async def elsewhere(_: web.Request) -> web.Response:
    """A page of another origin than the API's."""
    return web.Response(text="<p>elsewhere</p>", content_type="text/html")
