"""Outbound HTTP that settings or users aim: the rule for API base URLs, and :func:`read_page` for
agents reading a page at a URL they were handed (a search result, say).

Base URLs of the search and model APIs receive the keys, so they must be ``https://``.  Plain
``http://`` needs an explicit allowance naming the exact ``host:port``, per API:
``STREAMPROC_<NAME>_PLAIN_HTTP`` (``STREAMPROC_SERPAPI_PLAIN_HTTP=127.0.0.1:8081``,
``STREAMPROC_LLM_PLAIN_HTTP``), as the local stand-ins of development and tests set it.

:func:`read_page` guards against server-side request forgery (OWASP SSRF Prevention Cheat Sheet):

* only ``http`` and ``https``, and no credentials in the URL;
* the host is resolved once and refused if any address is not public unicast: loopback,
  RFC 1918, link-local (169.254.169.254, the cloud metadata service, included), unique-local
  ``fc00::/7``, unspecified, multicast, reserved or shared, or IPv6 wrapping such an IPv4
  address (mapped, 6to4, NAT64);
* the connection goes only to the addresses vetted (the connector's resolver hands out
  nothing else), so a DNS answer that changes between check and connect is never used;
* redirects are followed by hand, at most ``max_redirects``, each hop vetted the same way;
* the body is cut at ``max_bytes`` (after decompression), and the whole exchange, redirects
  included, has ``timeout`` seconds.

``STREAMPROC_FETCH_ALLOW`` lists ``host:port`` pairs (comma-separated) that page reads may
reach despite the address check: local test pages, nothing else.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from streamproc.errors import ConfigError, FetchError, FetchRefused

FETCH_ALLOW = "STREAMPROC_FETCH_ALLOW"
REDIRECTS = frozenset({301, 302, 303, 307, 308})
METADATA = frozenset(map(ipaddress.ip_address, ("169.254.169.254", "fd00:ec2::254")))
NAT64 = ipaddress.ip_network("64:ff9b::/96")
CHUNK = 64 * 1024

Address = tuple[str, int]


@dataclass(frozen=True)
class OutboundSettings:
    """How :func:`read_page` reads: the pairs exempt from the address check, and its bounds."""

    allow: frozenset[Address] = field(default_factory=frozenset)
    timeout: float = 10.0
    max_bytes: int = 256 * 1024
    max_redirects: int = 5

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> OutboundSettings:
        return cls(allow=pairs(environ, FETCH_ALLOW))


def pairs(environ: Mapping[str, str], variable: str) -> frozenset[Address]:
    """The comma-separated ``host:port`` pairs in ``environ[variable]``."""
    listed = environ.get(variable, "")
    return frozenset(_pair(variable, e.strip()) for e in listed.split(",") if e.strip())


def check_base_url(variable: str, url: str, plain_http: frozenset[Address]) -> None:
    """Refuse an API base URL that is not https, unless ``plain_http`` allows its host:port
    (``variable`` names the setting, ``STREAMPROC_<NAME>_URL``)."""
    parsed = _parse(url, ConfigError(f"{variable} is not a URL"))
    if parsed.raw_host and (
        parsed.scheme == "https" or (parsed.scheme == "http" and _address(parsed) in plain_http)
    ):
        return
    allowance = variable.removesuffix("_URL") + "_PLAIN_HTTP"
    pair = f"{parsed.raw_host}:{parsed.port}" if parsed.raw_host else "its host:port"
    raise ConfigError(
        f"{variable} must be an https:// URL; for a local stand-in over http, "
        f"set {allowance}={pair}"
    )


@dataclass(frozen=True)
class Page:
    """What :func:`read_page` read: ``url`` is the last hop's, ``body`` at most ``max_bytes``."""

    url: str
    status: int
    content_type: str
    charset: str | None
    body: bytes
    truncated: bool

    def text(self) -> str:
        try:
            return self.body.decode(self.charset or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            return self.body.decode("utf-8", errors="replace")


async def read_page(url: str, settings: OutboundSettings | None = None) -> Page:
    """The page at ``url`` under the rules above; :class:`FetchRefused` when they forbid it,
    :class:`FetchError` when it cannot be read."""
    settings = settings or OutboundSettings()
    resolver = PinnedResolver()
    connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
    try:
        async with (
            asyncio.timeout(settings.timeout),
            aiohttp.ClientSession(connector=connector, trust_env=False) as session,
        ):
            return await _follow(session, resolver, url, settings)
    except TimeoutError:
        raise FetchError(url, f"no answer within {settings.timeout:g}s") from None
    except aiohttp.ClientError as exc:
        raise FetchError(url, f"connection failed ({type(exc).__name__})") from None


def blocked(address: str) -> str | None:
    """Why no agent may connect to ``address``, or None for a public unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour
        if inner is None and ip in NAT64:
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is not None and (why := blocked(str(inner))):
            return f"{why}, wrapped in IPv6"
    checks = (
        (ip in METADATA, "cloud metadata service"),
        (ip.is_unspecified, "unspecified"),
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (ip.is_private, "private"),
        (ip.is_reserved, "reserved"),
        (not ip.is_global, "not public"),
    )
    return next((why for hit, why in checks if hit), None)


class PinnedResolver(AbstractResolver):
    """The connector's resolver: it answers only with addresses :func:`_vet` pinned, so the
    connection goes where the check looked, never to a second DNS answer."""

    def __init__(self) -> None:
        self._dns = ThreadedResolver()
        self._pinned: dict[Address, list[ResolveResult]] = {}

    async def lookup(self, host: str, port: int) -> list[ResolveResult]:
        return await self._dns.resolve(host, port, socket.AF_UNSPEC)

    def pin(self, host: str, port: int, found: list[ResolveResult]) -> None:
        self._pinned[host, port] = found

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            return self._pinned[host, port]
        except KeyError:
            raise OSError(f"{host}:{port} was not vetted") from None

    async def close(self) -> None:
        await self._dns.close()


async def _follow(
    session: aiohttp.ClientSession, resolver: PinnedResolver, url: str, settings: OutboundSettings
) -> Page:
    hop = _parse(url, FetchRefused(url, "not a URL"))
    for _ in range(settings.max_redirects + 1):
        await _vet(hop, resolver, settings)
        async with session.get(hop, allow_redirects=False) as reply:
            location = reply.headers.get("Location")
            if reply.status in REDIRECTS and location:
                hop = hop.join(_parse(location, FetchRefused(str(hop), "redirect to a non-URL")))
                continue
            if reply.status >= 400:
                raise FetchError(str(hop), f"HTTP {reply.status}")
            body, truncated = await _read(reply, settings.max_bytes)
            return Page(str(hop), reply.status, reply.content_type, reply.charset, body, truncated)
    raise FetchRefused(url, f"more than {settings.max_redirects} redirects")


async def _vet(url: URL, resolver: PinnedResolver, settings: OutboundSettings) -> None:
    """Check one hop and pin the addresses its connection may use."""
    shown = str(url)
    if url.scheme not in ("http", "https"):
        raise FetchRefused(shown, f"scheme {url.scheme!r} is not http or https")
    host, port = url.raw_host, url.port
    if not host or port is None:
        raise FetchRefused(shown, "no host to connect to")
    if url.user is not None or url.password is not None:
        raise FetchRefused(shown, "credentials in the URL")
    try:
        found = await resolver.lookup(host, port)
    except OSError as exc:
        raise FetchError(shown, f"{host} does not resolve ({exc.strerror or exc})") from None
    if _address(url) not in settings.allow:
        for result in found:
            if why := blocked(result["host"]):
                raise FetchRefused(shown, f"{host} resolves to {result['host']} ({why})")
    resolver.pin(host, port, found)


async def _read(reply: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """The body up to ``limit`` bytes, and whether there was more (then left unread)."""
    body = bytearray()
    async for chunk in reply.content.iter_chunked(CHUNK):
        body += chunk
        if len(body) > limit:
            return bytes(body[:limit]), True
    return bytes(body), False


def _address(url: URL) -> Address:
    return url.raw_host or "", url.port or 0


def _pair(variable: str, entry: str) -> Address:
    error = ConfigError(f"{variable}: {entry!r} is not host:port")
    url = _parse(f"http://{entry}", error)
    if not url.raw_host or url.explicit_port is None or url.raw_path not in ("", "/"):
        raise error
    return url.raw_host, url.explicit_port


def _parse(text: str, error: Exception) -> URL:
    try:
        return URL(text)
    except (ValueError, TypeError):
        raise error from None
