"""The dashboard's browser test fixtures, which a test module takes with
``pytest_plugins = ["tests.browser_fixtures"]``: one headless chromium for the session, the
API with tokens of each kind, and a fresh tab on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, async_playwright

from streamproc import Client
from tests.browser import CHROMIUM, TOKENS, Tab, new_tab, served


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One headless chromium for the session (Debian's: no browser download)."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        await launched.close()


@pytest.fixture
async def api(client: Client) -> AsyncIterator[str]:
    """The API with tokens of each kind; its base URL."""
    async with served(client, TOKENS) as base:
        yield base


@pytest.fixture
async def tab(browser: Browser, api: str) -> AsyncIterator[Tab]:
    async with new_tab(browser, api) as opened:
        yield opened
