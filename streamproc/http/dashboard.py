"""The web dashboard's static files, served at ``/ui/`` by ``streamproc api``.

The files (``ui/``: one HTML page, ES modules, a style sheet) hold no data, so they are served
without a token; the page asks for one and sends it as a bearer header on each API call, and
opens event streams with event tokens (``event_tokens.py``).  No build step, no outside
network: the page loads only these files.  Every value from a workflow is put in the page as
text, and the Content-Security-Policy on these replies lets the page run only its own script
files (no inline script, no ``eval``), so a value that slipped in as markup would still not
run.  One module, ``kinds.js``, is written here from ``EventKind``: an event stream names each
event by its kind, and a browser's EventSource hears only the names it listens for, so the
page listens for every kind the engine has.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

import orjson
from aiohttp import web

from streamproc.http.auth import OPEN, Needs
from streamproc.store.entries import EventKind
from streamproc.store.state import TERMINAL, WorkflowStatus

PREFIX = "/ui"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
NAME = re.compile(r"[a-z0-9-]{1,64}\.(html|js|css)")
# Only the page's own files run; its forms never submit (a token typed in must not end up in
# a URL); no other site may frame it.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate, so a new release's files are picked up
}
# The dashboard's routes are open to anyone: they hold no data (the bearer check's table).
DASHBOARD_NEEDS: Needs = {
    ("GET", PREFIX): OPEN,
    ("GET", f"{PREFIX}/"): OPEN,
    ("GET", f"{PREFIX}/{{name}}"): OPEN,
}


KINDS_MODULE = "kinds.js"


@functools.cache
def shipped() -> dict[str, bytes]:
    """The dashboard's files by name, read once from the installed package, and the module
    of event kinds."""
    folder = resources.files("streamproc.http").joinpath("ui")
    files = {f.name: f.read_bytes() for f in folder.iterdir() if NAME.fullmatch(f.name)}
    return {**files, KINDS_MODULE: kinds_module()}


def kinds_module() -> bytes:
    """``EVENT_KINDS``, every name an event stream gives its events (``message`` for one that
    is no lifecycle kind, ``sse.frame``), and ``FINAL_KINDS``, those that end a stream."""
    kinds = [*EventKind, "message"]
    final = [status for status in WorkflowStatus if status in TERMINAL]  # an end's event kind
    return (
        b"// Written by the server from the engine's event kinds (streamproc.store.entries).\n"
        b"export const EVENT_KINDS = " + orjson.dumps(kinds) + b";\n"
        b"export const FINAL_KINDS = " + orjson.dumps(final) + b";\n"
    )


def dashboard_routes() -> list[web.RouteDef]:
    return [
        web.get(PREFIX, to_index, allow_head=False),
        web.get(f"{PREFIX}/", index),
        web.get(f"{PREFIX}/{{name}}", static_file),
    ]


async def to_index(_: web.Request) -> web.Response:
    raise web.HTTPFound(f"{PREFIX}/")


async def index(_: web.Request) -> web.Response:
    return page("index.html")


async def static_file(request: web.Request) -> web.Response:
    return page(request.match_info["name"])


def page(name: str) -> web.Response:
    body = shipped().get(name)
    if body is None:
        raise web.HTTPNotFound(text=f"no dashboard file {name!r}")
    content_type = TYPES[name[name.rindex(".") :]]
    return web.Response(body=body, headers={**HEADERS, "Content-Type": content_type})
