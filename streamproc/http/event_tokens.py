"""Short-lived signed tokens that open one workflow's event stream, for browsers.

A browser's ``EventSource`` cannot send an ``Authorization`` header, so a caller with the
``read`` scope asks ``POST /workflows/{id}/events-token`` for a token to put in the URL
instead: ``GET /workflows/{id}/events?token=...``.  The token is
``expiry.tenant.issuer.signature``: an HMAC-SHA256, under the server's signing key, over the
workflow's stored id, the caller's tenant (empty for an operator), who asked for it (a digest
of the caller's bearer token, ``caps.bearer_id``: its streams count against that token's
cap, however many tokens it asks for) and the expiry (Unix seconds).  It opens that one stream, as
that tenant, read-only, until it expires, and no other route: a leaked URL is worth a minute
of one workflow's events.  Nothing is stored, so every API process given the same key
accepts it.

A URL lands in access logs, so the API's access log (:class:`QuietAccessLogger`) leaves the
token out.  A cookie was the other way; it would need a login route, CSRF care for the
``POST`` routes, and would open every route to a page that can make the browser send it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from streamproc.errors import SpecError
from streamproc.http.auth import CHALLENGE, READ, TENANT, Grant

EVENTS = "/workflows/{id}/events"  # the one route a token opens
QUERY = "token"
INVALID = "invalid event token: ask POST /workflows/{id}/events-token for one"


@dataclass(frozen=True)
class EventTokens:
    """Signs and checks event tokens with ``key``; a token lives ``ttl`` seconds."""

    key: bytes = field(repr=False)
    ttl: int = 60

    def issue(self, stored: str, tenant: str | None, issuer: str, now: float | None = None) -> str:
        """A token for the workflow stored as ``stored``, as seen by ``tenant``, asked for by
        ``issuer`` (``caps.bearer_id``)."""
        expiry = int(time.time() if now is None else now) + self.ttl
        signature = self._sign(expiry, tenant or "", issuer, stored)
        return f"{expiry}.{tenant or ''}.{issuer}.{signature}"

    def grant(self, request: web.Request) -> Grant | None:
        """The read-only grant of the request's query token, None when it brings none or
        the route takes none; 401 for a token this server did not sign for this workflow,
        or one that expired."""
        token = request.query.get(QUERY)
        route = request.match_info.route.resource
        if token is None or request.method != "GET" or route is None or route.canonical != EVENTS:
            return None
        expiry, tenant, issuer, signature = parse(token)
        grant = Grant(frozenset({READ}), tenant or None)
        try:
            stored = grant.stored_id(request.match_info["id"])
        except SpecError:
            raise refused(INVALID) from None
        if not hmac.compare_digest(signature, self._sign(expiry, tenant, issuer, stored)):
            raise refused(INVALID)
        if expiry < time.time():
            raise refused("event token expired: ask for a new one")
        return grant

    def _sign(self, expiry: int, tenant: str, issuer: str, stored: str) -> str:
        message = f"{expiry}\n{tenant}\n{issuer}\n{stored}".encode()
        mac = hmac.new(self.key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def parse(token: str) -> tuple[int, str, str, str]:
    """``expiry.tenant.issuer.signature``; 401 for anything else."""
    parts = token.split(".")
    if len(parts) != 4 or not parts[0].isdigit() or len(parts[0]) > 12:
        raise refused(INVALID)
    expiry, tenant, issuer, signature = parts
    if tenant and not TENANT.fullmatch(tenant):
        raise refused(INVALID)
    return int(expiry), tenant, issuer, signature


def issuer_of(token: str) -> str:
    """Who asked for ``token`` (one :meth:`EventTokens.grant` accepted)."""
    return parse(token)[2]


def refused(message: str) -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(
        text=message, headers={"WWW-Authenticate": CHALLENGE + ', error="invalid_token"'}
    )


class QuietAccessLogger(AbstractAccessLogger):
    """aiohttp's access log line, with the path but without the query string: a query may
    carry an event token, and a log is no place for one."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = request.raw_path.partition("?")[0]  # as sent (escaped): no line breaks
        self.logger.info(
            '%s "%s %s" %s %s %.3fs',
            request.remote,
            request.method,
            path,
            response.status,
            response.body_length,
            time,
        )
