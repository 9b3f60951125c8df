"""Web search providers behind one interface, tried in order by :class:`SearchChain`."""

from streamproc.concurrency import ConcurrencySettings
from streamproc.limit_settings import BreakerSettings, LimitSettings, Quota
from streamproc.providers.base import SearchProvider, SearchReply, SearchResult
from streamproc.providers.chain import SearchChain
from streamproc.providers.http import RetryPolicy, close_session
from streamproc.providers.secret import Secret
from streamproc.providers.settings import CacheSettings, SearchSettings

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
