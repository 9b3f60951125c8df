"""What a tokenless API (loopback only, ``auth.py``) refuses: other sites' pages.

Any page a browser on this machine loads can send requests to a loopback address.  A POST
with no body (cancel, a dead letter's requeue or purge) needs no preflight, so a page on
another site could send one; a site whose DNS name is rebound to 127.0.0.1 could read every
route as if it were the API's own origin.  So without tokens a request must be addressed to
a loopback host (``Host``), and one a page sends (``Origin``) must come from the API's own
origin or an allowed CORS origin.  A client that is no browser sends no ``Origin``.
"""

from __future__ import annotations

from collections.abc import Collection

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from streamproc.http.auth import is_loopback
from streamproc.http.errors import reply


def own_pages_only(allowed: Collection[str]) -> Middleware:
    """Middleware refusing (403) a request addressed to a host that is not loopback, or sent
    by a page of another origin than the API's and the ``allowed`` ones."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host")
        if host is not None and not _is_loopback_name(_host_name(host)):
            return reply(
                {"error": f"without tokens the API answers loopback addresses only, not {host!r}"},
                403,
            )
        origin = request.headers.get("Origin")
        if origin is not None and origin not in allowed and origin.lower() != _own(host):
            return reply(
                {"error": f"without tokens the API refuses requests from pages of {origin!r}"},
                403,
            )
        return await handler(request)

    return guard


def _host_name(host: str) -> str:
    """The name or address of a ``Host`` header, without its port."""
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rpartition(":")[0] if ":" in host else host


def _is_loopback_name(name: str) -> bool:
    """A loopback address, ``localhost``, or a name under ``.localhost`` (which browsers
    resolve to loopback themselves, RFC 6761)."""
    return is_loopback(name) or name.lower().rstrip(".").endswith(".localhost")


def _own(host: str | None) -> str | None:
    """The origin of the API's own pages, as a browser sends it."""
    return None if host is None else f"http://{host.lower()}"
