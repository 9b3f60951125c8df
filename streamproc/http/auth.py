"""Who may call the HTTP API: its settings, bearer tokens with their scopes and tenant, and the
loopback-only rule.

Tokens are kept only as sha256 digests, so a heap dump or a stray ``repr`` never shows one,
and are compared with :func:`hmac.compare_digest` against every stored digest, so the time
taken says nothing about how much of a guess was right.  Without any token the API would be
open to whoever can reach it: it then serves loopback clients only.

A token entry is ``TOKEN [scopes=S+S...] [tenant=NAME]``.  Scopes: ``read`` (workflows, their
events, agents, metrics, the document), ``submit`` (submit and cancel), ``admin`` (dead
letters).  A bare token is an operator's: every scope, no tenant, every workflow.  A tenant
token sees its tenant's workflows only: the API stores the workflow it calls ``x`` as
``<tenant>.x`` and shows it as ``x`` again.  A tenant name has no ``.``, so the first dot of a
stored id ends its tenant, and no tenant can name an id inside another's.  Dead letters carry
every tenant's workflows and inputs, so ``admin`` is for operators only.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from streamproc.errors import ConfigError, SpecError
from streamproc.http.bodies import one_header
from streamproc.http.cors import check_origins
from streamproc.http.errors import reply
from streamproc.ops.results import SHOWN_RESULT_BYTES
from streamproc.store.ids import check_id
from streamproc.store.tenants import Quota

MIN_TOKEN_LENGTH = 16
MAX_WORKFLOW_ID = 128  # the bound of ids.ID_PATTERN
CHALLENGE = 'Bearer realm="streamproc"'
READ, SUBMIT, ADMIN = "read", "submit", "admin"
SCOPES = (READ, SUBMIT, ADMIN)
TENANT_SCOPES = frozenset({READ, SUBMIT})
TENANT = re.compile(r"[A-Za-z0-9_-]{1,64}")
OPTIONS = ("scopes", "tenant")
OPEN = ""  # the scope a route open to anyone needs
Needs = Mapping[tuple[str, str], str]  # (METHOD, path template) -> scope
# Another proof a request may bring instead of a bearer header: its grant, or None for none.
Signed = Callable[[web.Request], "Grant | None"]


@dataclass(frozen=True)
class Grant:
    """What a caller may do: its scopes, and the tenant whose workflows alone it sees (None:
    an operator, who sees every workflow under its stored id)."""

    scopes: frozenset[str] = frozenset(SCOPES)
    tenant: str | None = None

    def stored_id(self, given: str) -> str:
        """The id in Redis of the workflow this caller calls ``given``.  A tenant's ``given``
        is checked here: the stored id would pass with a bad one (``""`` makes ``acme.``),
        and a refusal must name what the caller gave."""
        if self.tenant is None:
            return given
        check_id("workflow id", given)
        room = MAX_WORKFLOW_ID - len(self.tenant) - 1
        if len(given) > room:
            raise SpecError(
                f"invalid workflow id {given!r}: at most {room} characters for this tenant"
            )
        return f"{self.tenant}.{given}"

    def shown_id(self, stored: str) -> str:
        return stored if self.tenant is None else stored.removeprefix(f"{self.tenant}.")


OPERATOR = Grant()
GRANT = web.RequestKey("grant", Grant)


@dataclass(frozen=True)
class Credential:
    """One accepted token, as its digest, and what it grants; ``where`` names its entry in
    errors."""

    digest: bytes
    grant: Grant = OPERATOR
    where: str = field(default="a token", compare=False)

    @classmethod
    def of(cls, token: str, grant: Grant = OPERATOR, where: str = "a token") -> Credential:
        if len(token) < MIN_TOKEN_LENGTH:
            raise ConfigError(f"{where}: API tokens must be at least {MIN_TOKEN_LENGTH} characters")
        return cls(digest(token), grant, where)


@dataclass(frozen=True)
class ApiSettings:
    """Where ``streamproc api`` listens, who may call it and how big a request may be."""

    host: str = "127.0.0.1"
    port: int = 8080
    credentials: tuple[Credential, ...] = ()
    # Bodies past this are refused with 413 before they are read or parsed.
    client_max_size: int = 1 << 20
    # Seconds between keep-alive comments on an idle event stream, so proxies keep it open
    # and a client that went away is noticed.
    heartbeat: float = 15.0
    # Signs event tokens (event_tokens.py); API processes behind one address need the same.
    signing_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    event_token_ttl: int = 60
    # Event streams one token, and one tenant, may hold open at once (caps.py); past them 429.
    max_streams_per_token: int = 32
    max_streams_per_tenant: int = 128
    # Seconds a request's headers may take to arrive, from the connection's start or the
    # previous reply (an idle keep-alive connection closes after as long), and its body.
    header_timeout: float = 15.0
    body_timeout: float = 30.0
    # Browser origins whose pages may call the API (cors.py); none: no CORS header at all.
    cors_origins: tuple[str, ...] = ()
    # A task result over this many bytes is elided from a workflow's state (ops/results.py).
    max_shown_result_bytes: int = SHOWN_RESULT_BYTES
    # Each tenant's workflows in flight and bytes stored (store/tenants.py; 0: no limit).
    max_workflows_per_tenant: int = 1000
    max_bytes_per_tenant: int = 1 << 30

    def __post_init__(self) -> None:
        check_origins(self.cors_origins)

    def quota(self, tenant: str | None) -> Quota | None:
        """What a submit by ``tenant`` counts against (None: an operator, never limited)."""
        if tenant is None:
            return None
        return Quota(tenant, self.max_workflows_per_tenant, self.max_bytes_per_tenant)

    @classmethod
    def with_tokens(cls, tokens: Iterable[str], **fields: object) -> ApiSettings:
        """Settings accepting ``tokens`` as operators' (stored as digests)."""
        return cls.with_credentials([Credential.of(token) for token in tokens], **fields)

    @classmethod
    def with_credentials(cls, credentials: Iterable[Credential], **fields: object) -> ApiSettings:
        """Settings accepting ``credentials``; a token listed twice must grant the same."""
        kept: dict[bytes, Credential] = {}
        for credential in credentials:
            first = kept.setdefault(credential.digest, credential)
            if first.grant != credential.grant:
                raise ConfigError(
                    f"{first.where} and {credential.where} give one token different grants"
                )
        return cls(credentials=tuple(kept.values()), **fields)  # type: ignore[arg-type]

    def check_bind(self) -> None:
        """Refuse to serve without tokens on anything but a loopback address."""
        if not self.credentials and not is_loopback(self.host):
            raise ConfigError(
                f"refusing to serve the API on {self.host!r} without tokens: set "
                "STREAMPROC_API_TOKENS or --tokens-file, or bind to 127.0.0.1, ::1 or localhost"
            )


def digest(token: str) -> bytes:
    """A header's bytes that are no UTF-8 come as surrogates: kept, so such a token is
    merely unknown (401)."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bearer_auth(
    credentials: tuple[Credential, ...], needs: Needs, signed: Signed | None = None
) -> Middleware:
    """Middleware refusing a request without a known bearer token (401) or whose token lacks
    the scope its route needs (403), and telling handlers the caller's grant.  Without an
    ``Authorization`` header, ``signed`` may find another proof (a signed event token).

    ``needs`` maps ``(METHOD, path template)`` to the scope a route needs, :data:`OPEN` for
    one open to anyone.  A route it does not list is for ``admin`` (fail closed); a request
    that matches no route needs a valid token, then gets its 404 or 405.  With no tokens
    configured every request passes as an operator's (loopback only).
    """

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        scope = needed_scope(request, needs)
        if not credentials or scope == OPEN:
            request[GRANT] = OPERATOR
            return await handler(request)
        header = one_header(request, "Authorization")  # twice: which one did it mean?
        grant = signed(request) if signed is not None and header is None else None
        grant = grant or identify(credentials, header or "")
        if scope is not None and scope not in grant.scopes:
            return insufficient_scope(scope)
        request[GRANT] = grant
        return await handler(request)

    return authenticate


def needed_scope(request: web.Request, needs: Needs) -> str | None:
    """The scope the request's route needs, :data:`OPEN` for none at all, None for just a
    valid token (no route matched)."""
    key = route_key(request)
    return None if key is None else needs.get(key, ADMIN)


def route_key(request: web.Request) -> tuple[str, str] | None:
    """``(METHOD, path template)`` of the route the request matched (HEAD as GET), None
    when it matched none: how the tables of scopes and query parameters name a route."""
    route = request.match_info.route
    if request.match_info.http_exception is not None or route.resource is None:
        return None
    method = "GET" if route.method == "HEAD" else route.method
    return method, route.resource.canonical


def identify(credentials: tuple[Credential, ...], authorization: str) -> Grant:
    """The grant of the presented token, compared against every digest without stopping at a
    match; 401 with a bearer challenge when it is missing or unknown."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise web.HTTPUnauthorized(
            text="missing bearer token", headers={"WWW-Authenticate": CHALLENGE}
        )
    presented = digest(token.strip())
    grants = [c.grant for c in credentials if hmac.compare_digest(c.digest, presented)]
    if not grants:
        raise web.HTTPUnauthorized(
            text="invalid bearer token",
            headers={"WWW-Authenticate": CHALLENGE + ', error="invalid_token"'},
        )
    return grants[0]


def insufficient_scope(scope: str) -> web.Response:
    """403 naming the scope needed, with RFC 6750's challenge."""
    response = reply({"error": f"this token lacks the {scope!r} scope", "scope": scope}, 403)
    response.headers["WWW-Authenticate"] = (
        f'{CHALLENGE}, error="insufficient_scope", scope="{scope}"'
    )
    return response
