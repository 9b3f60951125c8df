"""Web search providers behind one interface, tried in order by :class:`SearchChain`."""

from streamproc.outbound.concurrency import ConcurrencySettings
from streamproc.outbound.http import RetryPolicy, close_session
from streamproc.outbound.limit_settings import BreakerSettings, LimitSettings, Quota
from streamproc.outbound.providers.base import SearchProvider, SearchReply, SearchResult
from streamproc.outbound.providers.chain import SearchChain
from streamproc.outbound.providers.settings import CacheSettings, SearchSettings
from streamproc.outbound.secret import Secret

__all__ = [
    "BreakerSettings",
    "CacheSettings",
    "ConcurrencySettings",
    "LimitSettings",
    "Quota",
    "RetryPolicy",
    "SearchChain",
    "SearchProvider",
    "SearchReply",
    "SearchResult",
    "SearchSettings",
    "Secret",
    "close_session",
]
