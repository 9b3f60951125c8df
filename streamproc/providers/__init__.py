"""Web search providers behind one interface, tried in order by :class:`SearchChain`."""

from streamproc.providers.base import SearchProvider, SearchReply, SearchResult
from streamproc.providers.chain import SearchChain
from streamproc.providers.http import RetryPolicy, close_session
from streamproc.providers.secret import Secret
from streamproc.providers.settings import CacheSettings, SearchSettings

__all__ = [
    "CacheSettings",
    "RetryPolicy",
    "SearchChain",
    "SearchProvider",
    "SearchReply",
    "SearchResult",
    "SearchSettings",
    "Secret",
    "close_session",
]
