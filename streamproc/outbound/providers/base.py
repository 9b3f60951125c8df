"""What every search provider returns, and how a provider's HTTP reply becomes a result or an
error.

Status codes map to errors by what the caller can do about them: 401/403 ->
:class:`KeyRejected`, 429 -> :class:`RateLimited`, 408 and 5xx -> :class:`Unavailable`, any
other failure -> :class:`ProviderError`.  Provider modules check their own special cases first
(SerpAPI's exhausted-account 429, Tavily's 432, ...) in :meth:`JsonSearchApi.special_error`
and fall back to :func:`classify`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import orjson

from streamproc.errors import (
    KeyRejected,
    MalformedReply,
    ProviderError,
    RateLimited,
    Unavailable,
)
from streamproc.outbound.http import Answer, request
from streamproc.outbound.providers.limits import retry_after
from streamproc.outbound.secret import Secret

DETAIL_CHARS = 200


@dataclass(frozen=True)
class SearchResult:
    title: str
    url: str
    snippet: str


@dataclass(frozen=True)
class SearchReply:
    """One provider's answer.  ``elapsed`` is the upstream time in seconds; ``cached`` is True
    when the reply came out of the search cache rather than from the provider just now."""

    provider: str
    query: str
    results: tuple[SearchResult, ...]
    elapsed: float | None = None
    cached: bool = False


class SearchProvider(Protocol):
    """One web search API: a single attempt per call; retries and fallback live in the chain."""

    @property
    def name(self) -> str: ...

    async def search(self, query: str, count: int) -> SearchReply: ...


@dataclass(frozen=True)
class Request:
    """One search request as a provider's API spells it; the key rides in it (params or
    headers) because each API takes it somewhere else."""

    method: str
    path: str
    params: Mapping[str, str | int] | None = None
    headers: Mapping[str, str] | None = None
    payload: object = None


@dataclass(frozen=True)
class JsonSearchApi(ABC):
    """The search every provider module shares: send the provider's request, read a 200's
    JSON object as results, turn any other reply into an error.  A provider supplies only what
    differs: its request (:meth:`request_for`), where its results sit (:meth:`results_in`),
    where its error bodies keep their text (``error_at``, first found wins) and the failed
    replies its status alone would misread (:meth:`special_error`)."""

    name: ClassVar[str]
    error_at: ClassVar[tuple[tuple[str | int, ...], ...]]
    key: Secret
    base_url: str
    timeout: float = 10.0

    async def search(self, query: str, count: int) -> SearchReply:
        started = time.monotonic()
        sent = self.request_for(query, count)
        answer = await request(
            self.name, sent.method, f"{self.base_url}{sent.path}", timeout=self.timeout,
            params=sent.params, headers=sent.headers, payload=sent.payload,
        )  # fmt: skip
        if answer.status != 200:
            raise self.error_for(answer)
        found = self.results_in(json_object(self.name, answer))
        return SearchReply(self.name, query, found, round(time.monotonic() - started, 4))

    @abstractmethod
    def request_for(self, query: str, count: int) -> Request:
        """The request asking for ``count`` results for ``query``."""

    @abstractmethod
    def results_in(self, data: dict[str, Any]) -> tuple[SearchResult, ...]:
        """The results of a 200 reply; :class:`MalformedReply` if it is not a search reply."""

    def error_for(self, answer: Answer) -> ProviderError:
        """The error for a failed reply; its detail is scrubbed, as some APIs echo the key."""
        text = next(filter(None, (error_text(answer, *path) for path in self.error_at)), "")
        detail = self.key.scrub(text)
        return self.special_error(answer, detail) or classify(self.name, answer, detail)

    def special_error(self, answer: Answer, detail: str) -> ProviderError | None:
        """The error for a failed reply that :func:`classify` would misread, else None."""
        return None


def json_object(provider: str, answer: Answer) -> dict[str, Any]:
    """The reply body as a JSON object, or :class:`MalformedReply`."""
    try:
        data = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        raise MalformedReply(provider, f"HTTP {answer.status} reply is not JSON") from None
    if not isinstance(data, dict):
        raise MalformedReply(provider, f"reply is a JSON {type(data).__name__}, not an object")
    return data


def dig(data: object, *path: str | int) -> object:
    """``data[path[0]][path[1]]...``, or None where a level is missing or of another type."""
    for step in path:
        if isinstance(step, int) and isinstance(data, list) and -len(data) <= step < len(data):
            data = data[step]
        elif isinstance(step, str) and isinstance(data, dict):
            data = data.get(step)
        else:
            return None
    return data


def error_text(answer: Answer, *path: str | int) -> str:
    """The provider's own error message at ``path`` in a JSON body, shortened; "" if none."""
    try:
        text = dig(orjson.loads(answer.body), *path)
    except orjson.JSONDecodeError:
        return ""
    return text[:DETAIL_CHARS] if isinstance(text, str) else ""


def describe(answer: Answer, detail: str) -> str:
    return f"HTTP {answer.status}: {detail}" if detail else f"HTTP {answer.status}"


def classify(provider: str, answer: Answer, detail: str) -> ProviderError:
    """The error for a failed reply by status alone (see the module docstring)."""
    reason = describe(answer, detail)
    if answer.status in (401, 403):
        return KeyRejected(provider, reason)
    if answer.status == 429:
        return RateLimited(provider, reason, retry_after(answer.headers))
    if answer.status == 408 or answer.status >= 500:
        return Unavailable(provider, reason)
    return ProviderError(provider, reason)


def results_from(
    provider: str, items: object, title: str, url: str, snippet: str
) -> tuple[SearchResult, ...]:
    """Result objects named in the provider's own fields; a missing list is an empty one,
    anything else out of shape is :class:`MalformedReply`."""
    if items is None:
        return ()
    if not isinstance(items, list):
        raise MalformedReply(provider, f"results are a {type(items).__name__}, not a list")
    found = []
    for item in items:
        heading, link, text = (dig(item, name) for name in (title, url, snippet))
        if not isinstance(heading, str) or not isinstance(link, str):
            raise MalformedReply(provider, f"a result lacks a {title!r} or {url!r} string")
        found.append(SearchResult(heading, link, text if isinstance(text, str) else ""))
    return tuple(found)
