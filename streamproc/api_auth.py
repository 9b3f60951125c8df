"""Who may call the HTTP API: its settings, bearer tokens, and the loopback-only rule.

Tokens are kept only as sha256 digests, so a heap dump or a stray ``repr`` never shows one,
and are compared with :func:`hmac.compare_digest` against every stored digest, so the time
taken says nothing about how much of a guess was right.  Without any token the API would be
open to whoever can reach it: it then serves loopback clients only.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from streamproc.errors import ConfigError

MIN_TOKEN_LENGTH = 16
OPEN_PATHS = frozenset({"/healthz"})
CHALLENGE = 'Bearer realm="streamproc"'


@dataclass(frozen=True)
class ApiSettings:
    """Where ``streamproc api`` listens, who may call it and how big a request may be."""

    host: str = "127.0.0.1"
    port: int = 8080
    token_digests: frozenset[bytes] = frozenset()
    # Bodies past this are refused with 413 before they are read or parsed.
    client_max_size: int = 1 << 20
    # Seconds between keep-alive comments on an idle event stream, so proxies keep it open
    # and a client that went away is noticed.
    heartbeat: float = 15.0

    @classmethod
    def with_tokens(cls, tokens: Iterable[str], **fields: object) -> ApiSettings:
        """Settings accepting ``tokens`` (stored as digests); refuses short tokens."""
        digests = set()
        for token in tokens:
            if len(token) < MIN_TOKEN_LENGTH:
                raise ConfigError(f"API tokens must be at least {MIN_TOKEN_LENGTH} characters")
            digests.add(digest(token))
        return cls(token_digests=frozenset(digests), **fields)  # type: ignore[arg-type]

    def check_bind(self) -> None:
        """Refuse to serve without tokens on anything but a loopback address."""
        if not self.token_digests and not is_loopback(self.host):
            raise ConfigError(
                f"refusing to serve the API on {self.host!r} without tokens: set "
                "STREAMPROC_API_TOKENS or --tokens-file, or bind to 127.0.0.1, ::1 or localhost"
            )


def parse_tokens(text: str, separator: str) -> list[str]:
    """Tokens from an environment value (comma separated) or a file (one a line; blank lines
    and ``#`` comments skipped)."""
    parts = (part.strip() for part in text.split(separator))
    return [part for part in parts if part and not part.startswith("#")]


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bearer_auth(digests: frozenset[bytes]) -> Middleware:
    """Middleware refusing (401) a request without a known bearer token, except to
    :data:`OPEN_PATHS`; with no tokens configured every request passes (loopback only)."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if digests and request.path not in OPEN_PATHS:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise web.HTTPUnauthorized(
                    text="missing bearer token", headers={"WWW-Authenticate": CHALLENGE}
                )
            if not known(digests, token.strip()):
                raise web.HTTPUnauthorized(
                    text="invalid bearer token",
                    headers={"WWW-Authenticate": CHALLENGE + ', error="invalid_token"'},
                )
        return await handler(request)

    return authenticate


def known(digests: frozenset[bytes], token: str) -> bool:
    """Compare against every digest, without stopping at a match."""
    presented = digest(token)
    matched = False
    for stored in digests:
        matched |= hmac.compare_digest(stored, presented)
    return matched
