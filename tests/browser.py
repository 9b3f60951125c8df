"""What the dashboard's browser tests use: Debian's chromium driven by Playwright (no browser
download), the API served over TCP with tokens of each kind, tabs that record script errors,
and screenshots in an ignored folder.  Its fixtures are in
``browser_fixtures.py``."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from playwright.async_api import Browser, ConsoleMessage, Locator, Page, expect

from streamproc import Client
from streamproc.http.app import serve
from streamproc.http.auth import ApiSettings
from streamproc.http.tokens import parse_tokens
from streamproc.testing.embedded import free_port
from tests.cli_runner import ROOT
from tests.conftest import eventually
from tests.http_helpers import healthy

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = ROOT / "test-output" / "screenshots"
OPS = "ops-token-for-the-dashboard"
READER = "reader-token-for-the-dashboard"
ACME = "acme-token-for-the-dashboard"
GLOBEX = "globex-token-for-the-dashboard"
TOKENS = f"{OPS}\n{READER} scopes=read\n{ACME} tenant=acme\n{GLOBEX} tenant=globex\n"
WAIT_MS = 10_000  # how long a page may take to show what a test waits for

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"no chromium at {CHROMIUM}: scripts/setup test installs it (apt-get install chromium)",
)
expect.set_options(timeout=WAIT_MS)


@asynccontextmanager
async def served(client: Client, tokens: str) -> AsyncIterator[str]:
    """The API (dashboard included) on a free port with ``tokens`` (none: loopback only,
    tokenless); its base URL."""
    port, stop = free_port(), asyncio.Event()
    settings = ApiSettings.with_credentials(parse_tokens(tokens, "\n", "tokens"), port=port)
    server = asyncio.create_task(serve(client, settings, stop))
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await eventually(lambda: healthy(session, base))
        yield base
    finally:
        stop.set()
        await server


class Tab:
    """A browser tab on the dashboard; it records script errors, which a test may assert
    there were none of."""

    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        """Console errors but the browser's note of each refused request (a 401 asks for a
        token, a 404 says what is missing): a CSP violation is one of them."""
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)

    async def open(self, route: str = "#/", token: str | None = OPS) -> None:
        """Open ``route``, giving ``token`` when the page asks for one."""
        await self.page.goto(f"{self.base}/ui/{route}")
        if token is not None:
            await self.page.get_by_label("Bearer token").fill(token)
            await self.page.get_by_role("button", name="Use this token").click()

    async def shot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


@asynccontextmanager
async def new_tab(browser: Browser, base: str) -> AsyncIterator[Tab]:
    """A fresh tab (its own session storage) on the dashboard at ``base``."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        yield Tab(await context.new_page(), base)
    finally:
        await context.close()


async def submit(base: str, spec: dict[str, Any], token: str = OPS) -> str:
    """Submit ``spec`` through the API; the id it answers."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/workflows", data=orjson.dumps(spec), headers=headers) as reply,
    ):
        assert reply.status == 201, await reply.text()
        return str((await reply.json())["id"])


def node(tab: Tab, task: str) -> Locator:
    """The DAG's node of ``task``."""
    return tab.page.locator(f'svg.dag g.node[data-task="{task}"]')
