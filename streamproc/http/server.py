"""The API's runner and reply headers: aiohttp's runner, with refusals of malformed requests
that show nothing.

aiohttp's HTTP parser refuses a bad request line or header (a token followed by a stray
``\\r`` or NUL, a folded header, a lowercase method) before any middleware runs, and its
default answer logs an ERROR traceback and sends a 400 whose body both quote the offending
line: with it, the bearer token.  :class:`QuietHandler` answers those with a fixed JSON
error and logs one line that quotes nothing the client sent.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from streamproc.http.errors import reply

log = logging.getLogger(__name__)
REFUSED = {400: "malformed request", 500: "internal error"}
# On every reply: no versions for a scanner to match, and no type sniffing by a browser.
HEADERS = {"Server": "streamproc", "X-Content-Type-Options": "nosniff"}


async def secure_headers(_: web.Request, response: web.StreamResponse) -> None:
    """``HEADERS``, and ``Cache-Control: no-store`` on JSON: what a token reads must not stay
    in a shared cache, nor in a browser's."""
    response.headers.update(HEADERS)
    if response.content_type == "application/json":
        response.headers["Cache-Control"] = "no-store"


class QuietHandler(RequestHandler):
    """aiohttp's connection handler, whose error answers say nothing of the request."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500 and not isinstance(exc, asyncio.CancelledError):
            log.error("request from %s failed: %s", request.remote, type(exc).__name__)
        else:
            log.info("refused a malformed request from %s (%s)", request.remote, status)
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already under way: the connection is closed")
        response = reply({"error": REFUSED.get(status, "request refused")}, status)
        response.headers.update(HEADERS)
        response.force_close()
        return response


class QuietServer(web.Server):
    """Makes a :class:`QuietHandler` for each connection, with aiohttp's handler options."""

    def __init__(self, handler: Any, *, handler_cancellation: bool, **options: Any) -> None:
        super().__init__(handler, handler_cancellation=handler_cancellation, **options)
        self.options = {k: v for k, v in options.items() if k != "request_factory"}

    def __call__(self) -> RequestHandler:
        return QuietHandler(self, loop=asyncio.get_running_loop(), **self.options)


class QuietRunner(web.AppRunner):
    """aiohttp's runner for an application, serving it through a :class:`QuietServer`."""

    def __init__(self, app: web.Application, *, shutdown_timeout: float, **options: Any) -> None:
        super().__init__(app, shutdown_timeout=shutdown_timeout, **options)
        self.options = options  # the server's and its handlers'

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        return QuietServer(
            made.request_handler, request_factory=made.request_factory, **self.options
        )
