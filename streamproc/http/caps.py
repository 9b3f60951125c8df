"""Caps on the event streams open at once: per token, and per tenant.

An open stream costs the API process memory and a share of the hub's reads (``hub.py``), not
a Redis connection; the caps keep one caller from holding a share that starves the others.
A stream past a cap is refused with 429 and ``Retry-After``: it may open once one of the
caller's streams has ended.  Operators have no tenant, so only the token cap bounds them.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

RETRY_AFTER = 5  # seconds: a browser tab's stream ends at the latest when its tab closes


@dataclass
class StreamCaps:
    """Counts the open streams of each token and tenant against their caps."""

    per_token: int
    per_tenant: int
    _tokens: Counter[bytes] = field(default_factory=Counter)
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


def caller(request: web.Request) -> bytes:
    """The proof the request brought (its bearer header or event token), as a digest: what
    the token cap counts by."""
    proof = f"{request.headers.get('Authorization', '')}\n{request.query.get('token', '')}"
    return hashlib.sha256(proof.encode("utf-8", "surrogateescape")).digest()


def release(counts: Counter[Any], key: object) -> None:
    """One fewer for ``key``, forgotten at none (so counters do not grow with every caller)."""
    counts[key] -= 1
    if counts[key] <= 0:
        del counts[key]


def too_many(message: str) -> web.HTTPTooManyRequests:
    return web.HTTPTooManyRequests(
        text=f"{message}: close one first", headers={"Retry-After": str(RETRY_AFTER)}
    )
