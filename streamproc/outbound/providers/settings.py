"""Search settings: which providers take part, in what order, where, and how the cache keeps
their replies.  Read from the environment only by :meth:`SearchSettings.from_env`.

=============================  ==============================================================
variable                       meaning
=============================  ==============================================================
``SERPAPI_KEY``                SerpAPI key; SerpAPI takes part only when set (same for all)
``BRAVE_API_KEY``              Brave Search subscription token
``TAVILY_API_KEY``             Tavily key
``BING_API_KEY``               Bing v7 key (retired API; for compatible endpoints)
``STREAMPROC_SEARCH_ORDER``    comma-separated provider names, first tried first
``STREAMPROC_<NAME>_URL``      base URL override, e.g. ``STREAMPROC_BRAVE_URL``: https only,
                               unless ``STREAMPROC_<NAME>_PLAIN_HTTP`` names its
                               ``host:port`` (a local stand-in over http; see outbound.py)
``STREAMPROC_<NAME>_RATE``     calls/s (or ``N/min``, ``N/h``) for all workers together;
                               none by default
``STREAMPROC_<NAME>_BURST``    calls allowed at once above the rate (default 1)
``STREAMPROC_<NAME>_QUOTA``    ``N/day`` or ``N/month`` (UTC); none by default
``STREAMPROC_<NAME>_BREAKER``  ``on`` (default) or ``off``: the shared circuit breaker
``STREAMPROC_SEARCH_GIVE_UP``  seconds a task waits for a provider to come back before it is
                               dead-lettered (default 3600)
``STREAMPROC_SEARCH_TIMEOUT``  seconds one HTTP request may take, connecting and reading
                               included (default 10); a visit makes up to three (retries),
                               so keep three of them under the tasks' own timeout
=============================  ==============================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from streamproc.errors import ConfigError
from streamproc.outbound.concurrency import ConcurrencySettings
from streamproc.outbound.guarded import Address, check_base_url, pairs
from streamproc.outbound.http import RetryPolicy
from streamproc.outbound.limit_settings import LimitSettings, limits_from_env
from streamproc.outbound.secret import Secret

DEFAULT_URLS = {
    "serpapi": "https://serpapi.com",
    "brave": "https://api.search.brave.com",
    "tavily": "https://api.tavily.com",
    "bing": "https://api.bing.microsoft.com",
}
KEY_VARIABLES = {
    "serpapi": "SERPAPI_KEY",
    "brave": "BRAVE_API_KEY",
    "tavily": "TAVILY_API_KEY",
    "bing": "BING_API_KEY",
}


@dataclass(frozen=True)
class CacheSettings:
    """Expiry bounds (seconds) and single-flight timings of the search cache (see ``cache``)."""

    base_ttl: float = 3600.0
    min_ttl: float = 600.0
    max_ttl: float = 7 * 24 * 3600.0
    # An empty reply may just be too early (news not indexed yet), so it is kept briefly.
    empty_ttl: float = 300.0
    # A leader that dies mid-search holds the query's lock at most this long.
    lock_ttl: float = 60.0
    # A process waiting on another's search gives up and searches itself after this.
    wait_timeout: float = 45.0
    poll_interval: float = 0.05

    def __post_init__(self) -> None:
        if not 0 < self.min_ttl <= self.max_ttl:
            raise ConfigError("cache ttl bounds need 0 < min_ttl <= max_ttl")
        if min(self.base_ttl, self.empty_ttl, self.lock_ttl, self.poll_interval) <= 0:
            raise ConfigError("cache ttls and intervals must be positive")


@dataclass(frozen=True)
class SearchSettings:
    """Keys never show in a repr (:class:`Secret`); only providers with a key take part."""

    keys: Mapping[str, Secret] = field(default_factory=dict)
    order: tuple[str, ...] = ("serpapi", "brave", "tavily", "bing")
    urls: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    count: int = 5
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # How long a provider whose allowance is spent is skipped when it does not say.
    quota_rest: float = 3600.0
    cache: CacheSettings = field(default_factory=CacheSettings)
    # Shared rate, quota and breaker per provider (no entry: defaults, breaker only).
    limits: Mapping[str, LimitSettings] = field(default_factory=dict)
    concurrency: ConcurrencySettings = field(default_factory=ConcurrencySettings)
    # How long a task waits for an out provider (every one spent or open) before giving up.
    give_up_after: float = 3600.0
    # Per provider, the host:port pairs its URL may name over plain http (local stand-ins).
    plain_http: Mapping[str, frozenset[Address]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        named = {*self.order, *self.keys, *self.urls, *self.limits, *self.plain_http}
        unknown = sorted(named - DEFAULT_URLS.keys())
        if unknown:
            known = ", ".join(DEFAULT_URLS)
            raise ConfigError(f"unknown search provider {unknown[0]!r} (known: {known})")
        for name, url in self.urls.items():
            allowed = self.plain_http.get(name, frozenset())
            check_base_url(f"STREAMPROC_{name.upper()}_URL", url, allowed)

    def configured(self) -> tuple[str, ...]:
        """The providers that take part, in order."""
        return tuple(name for name in self.order if name in self.keys)

    def url(self, name: str) -> str:
        return self.urls.get(name, DEFAULT_URLS[name]).rstrip("/")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SearchSettings:
        """Keys, order, URL overrides, limits, the give-up time and the request timeout from
        ``environ`` (see the module table); the rest keeps its defaults
        (change them with :func:`dataclasses.replace`)."""
        keys = {
            name: Secret(environ[var].strip())
            for name, var in KEY_VARIABLES.items()
            if environ.get(var, "").strip()
        }
        urls = {
            name: environ[var]
            for name in DEFAULT_URLS
            if environ.get(var := f"STREAMPROC_{name.upper()}_URL")
        }
        listed = environ.get("STREAMPROC_SEARCH_ORDER", "")
        order = tuple(n.strip().lower() for n in listed.split(",") if n.strip())
        limits = limits_from_env(environ, DEFAULT_URLS)
        timeout = _seconds(environ, "STREAMPROC_SEARCH_TIMEOUT", cls.timeout)
        if not timeout > 0:  # also refuses NaN
            raise ConfigError("STREAMPROC_SEARCH_TIMEOUT must be a positive number of seconds")
        return cls(
            keys=keys,
            urls=urls,
            order=order or cls.order,
            limits=limits,
            give_up_after=_seconds(environ, "STREAMPROC_SEARCH_GIVE_UP", cls.give_up_after),
            timeout=timeout,
            plain_http={
                name: pairs(environ, f"STREAMPROC_{name.upper()}_PLAIN_HTTP")
                for name in DEFAULT_URLS
            },
        )


def _seconds(environ: Mapping[str, str], variable: str, default: float) -> float:
    text = environ.get(variable, "").strip()
    try:
        return float(text) if text else default
    except ValueError:
        raise ConfigError(f"{variable} must be a number of seconds") from None
