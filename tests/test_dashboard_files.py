"""The dashboard's files as the API serves them (issue 21): without a token, under a
Content-Security-Policy that lets only the page's own script files run, and written so that
no value can become markup (no innerHTML and the like in any script)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from streamproc import Client
from streamproc.http.auth import ApiSettings
from streamproc.http.dashboard import KINDS_MODULE, shipped
from streamproc.store.entries import EventKind
from streamproc.store.state import TERMINAL
from tests.http_helpers import TOKEN, Http, serving

UI = Path(__file__).parents[1] / "streamproc" / "http" / "ui"
MARKUP_SINKS = re.compile(
    r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
    r"createContextualFragment|setHTMLUnsafe"
)


@pytest.fixture
async def http(client: Client) -> AsyncIterator[Http]:
    async with serving(client, ApiSettings.with_tokens([TOKEN])) as test_client:
        yield test_client


async def test_the_page_and_its_files_are_served_without_a_token_under_a_strict_policy(
    http: Http,
) -> None:
    page = await http.get("/ui/")
    assert page.status == 200 and page.content_type == "text/html"
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy and "default-src 'none'" in policy
    assert "form-action 'none'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "app.js" in await page.text()
    types = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}
    for name in shipped():
        served = await http.get(f"/ui/{name}")
        assert served.status == 200, name
        assert served.content_type == types[Path(name).suffix], name
        assert "script-src 'self'" in served.headers["Content-Security-Policy"]
    moved = await http.get("/ui", allow_redirects=False)
    assert (moved.status, moved.headers["Location"]) == (302, "/ui/")
    assert (await http.get("/agents")).status == 401  # the data still needs the token


async def test_only_the_shipped_files_are_served(http: Http) -> None:
    for path in ("/ui/nope.js", "/ui/..%2Fopenapi.json", "/ui/app.py", "/ui/%2e%2e"):
        response = await http.get(path)
        assert response.status in (404, 401), path
        assert '"openapi":' not in await response.text()  # not the document
    missing = await http.get("/ui/nope.js")
    assert (missing.status, await missing.json()) == (404, {"error": "no dashboard file 'nope.js'"})


def test_the_page_has_no_inline_script_and_no_script_writes_markup() -> None:
    html = (UI / "index.html").read_text()
    assert re.findall(r"<script\b[^>]*>", html) == ['<script type="module" src="app.js">']
    assert not re.search(r"\son[a-z]+\s*=", html)  # no inline handlers either
    for script in UI.glob("*.js"):
        text = script.read_text()
        assert not MARKUP_SINKS.search(text), script.name
        for imported in re.findall(r'from "\./([^"]+)"', text):
            assert (UI / imported).is_file() or imported == KINDS_MODULE, (script.name, imported)
    assert set(shipped()) == {p.name for p in UI.iterdir() if p.is_file()} | {KINDS_MODULE}


async def test_the_page_is_given_every_event_kind_the_engine_has(http: Http) -> None:
    """An EventSource hears only the event names it listens for: the page listens for every
    kind a workflow's event stream may name, so a kind added to the engine is heard too."""
    module = await http.get(f"/ui/{KINDS_MODULE}")
    assert module.status == 200 and module.content_type == "text/javascript"
    assert "script-src 'self'" in module.headers["Content-Security-Policy"]
    lines = dict(
        re.fullmatch(r"export const (\w+) = (.*);", line).groups()  # type: ignore[union-attr]
        for line in (await module.text()).splitlines()
        if line.startswith("export")
    )
    assert orjson.loads(lines["EVENT_KINDS"]) == [*EventKind, "message"]
    assert set(orjson.loads(lines["FINAL_KINDS"])) == set(TERMINAL)
