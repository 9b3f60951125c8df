"""Caps on the event streams open at once: per token, and per tenant.

An open stream costs the API process memory and a share of the hub's reads (``hub.py``), not
a Redis connection; the caps keep one caller from holding a share that starves the others.
A stream past a cap is refused with 429 and ``Retry-After``: it may open once one of the
caller's streams has ended.  Operators have no tenant, so only the token cap bounds them.  A
stream opened with an event token counts against the bearer token that asked for it
(``event_tokens.py``), so asking for more event tokens opens no more streams.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from streamproc.http.event_tokens import QUERY, issuer_of

RETRY_AFTER = 5  # seconds: a browser tab's stream ends at the latest when its tab closes


@dataclass
class StreamCaps:
    """Counts the open streams of each token and tenant against their caps."""

    per_token: int
    per_tenant: int
    _tokens: Counter[str] = field(default_factory=Counter)
    _tenants: Counter[str] = field(default_factory=Counter)

    @contextmanager
    def held(self, request: web.Request, tenant: str | None) -> Iterator[None]:
        """One stream of the request's caller open for the block; 429 past a cap."""
        token = caller(request)
        if self._tokens[token] >= self.per_token:
            raise too_many(f"this token has {self.per_token} event streams open")
        if tenant is not None and self._tenants[tenant] >= self.per_tenant:
            raise too_many(f"this tenant has {self.per_tenant} event streams open")
        self._tokens[token] += 1
        if tenant is not None:
            self._tenants[tenant] += 1
        try:
            yield
        finally:
            release(self._tokens, token)
            if tenant is not None:
                release(self._tenants, tenant)


def caller(request: web.Request) -> str:
    """Whose stream the request opens, as the token cap counts: its bearer token's
    :func:`bearer_id`, or, for a request authenticated by an event token (one without an
    ``Authorization`` header, as ``auth.py`` takes it), the id of the bearer token that
    asked for it."""
    token = request.query.get(QUERY)
    if token is None or "Authorization" in request.headers:
        return bearer_id(request)
    return issuer_of(token)


def bearer_id(request: web.Request) -> str:
    """A digest of the request's ``Authorization`` header (12 characters of base64url): it
    names the token without showing it."""
    proof = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
    return base64.urlsafe_b64encode(hashlib.sha256(proof).digest()[:9]).decode()


def release(counts: Counter[Any], key: object) -> None:
    """One fewer for ``key``, forgotten at none (so counters do not grow with every caller)."""
    counts[key] -= 1
    if counts[key] <= 0:
        del counts[key]


def too_many(message: str) -> web.HTTPTooManyRequests:
    return web.HTTPTooManyRequests(
        text=f"{message}: close one first", headers={"Retry-After": str(RETRY_AFTER)}
    )
