"""Cross-origin calls from a browser page (a dashboard on another origin): off by default.

Only origins listed in ``ApiSettings.cors_origins`` (``--cors-origin``) are named back in
``Access-Control-Allow-Origin``; any other origin gets no CORS header, so its page cannot read
a reply.  A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) from an allowed
origin is answered before the bearer check: a browser sends it without credentials.  No
cookies are involved, so ``Allow-Credentials`` is never sent: a page sends its token itself.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from streamproc.errors import ConfigError

ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?")
METHODS = "GET, POST, DELETE, OPTIONS"  # every method a route answers
HEADERS = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID"
EXPOSED = "Location, Retry-After"
MAX_AGE = "600"  # seconds a browser may keep a preflight's answer
Prepare = Callable[[web.Request, web.StreamResponse], Awaitable[None]]


def check_origins(origins: Collection[str]) -> None:
    """Each allowed origin is ``scheme://host[:port]`` exactly as a browser sends it."""
    for origin in origins:
        if not ORIGIN.fullmatch(origin):
            raise ConfigError(f"invalid CORS origin {origin!r}: use scheme://host[:port]")


def preflight(allowed: Collection[str]) -> Middleware:
    """Answers an allowed origin's preflight (204), tokenless; other requests go on."""

    @web.middleware
    async def answer(request: web.Request, handler: Handler) -> web.StreamResponse:
        is_preflight = request.method == "OPTIONS" and (
            "Access-Control-Request-Method" in request.headers
        )
        if not is_preflight or request.headers.get("Origin") not in allowed:
            return await handler(request)
        headers = {
            "Access-Control-Allow-Methods": METHODS,
            "Access-Control-Allow-Headers": HEADERS,
            "Access-Control-Max-Age": MAX_AGE,
        }
        return web.Response(status=204, headers=headers)

    return answer


def allow_origin(allowed: Collection[str]) -> Prepare:
    """A hook naming an allowed origin back on each response: a reply, an error, a
    preflight's answer or an event stream (whose headers go out before its handler returns,
    hence a hook, not a middleware)."""

    async def hook(request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if origin is not None and origin in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED
            response.headers["Vary"] = "Origin"

    return hook
