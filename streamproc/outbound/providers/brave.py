"""Brave Web Search: ``GET {base}/res/v1/web/search?q=&count=``, key in ``X-Subscription-Token``.

Results are ``web.results[]`` with ``title``, ``url`` and ``description``; a reply with no web
results has no ``web`` object.  Rate-limit headers carry one comma-separated value per window,
shortest first (``X-RateLimit-Remaining: 0, 1500`` = none left this second, 1500 this month).
A 429 whose last (monthly) window has nothing left is :class:`QuotaSpent`; any other 429 is
:class:`RateLimited` until the exhausted window resets.  Brave refuses an unknown token with
HTTP 422 and code ``SUBSCRIPTION_TOKEN_INVALID`` rather than 401.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streamproc.errors import KeyRejected, MalformedReply, ProviderError, QuotaSpent
from streamproc.outbound.http import Answer
from streamproc.outbound.providers.base import (
    JsonSearchApi,
    Request,
    SearchResult,
    describe,
    error_text,
    results_from,
)
from streamproc.outbound.providers.limits import numbers

TOKEN_CODES = ("SUBSCRIPTION_TOKEN_INVALID", "SUBSCRIPTION_TOKEN_MISSING")


@dataclass(frozen=True)
class Brave(JsonSearchApi):
    name = "brave"
    error_at = (("error", "detail"),)

    def request_for(self, query: str, count: int) -> Request:
        headers = {"X-Subscription-Token": self.key.reveal(), "Accept": "application/json"}
        return Request(
            "GET", "/res/v1/web/search", params={"q": query, "count": count}, headers=headers
        )

    def results_in(self, data: dict[str, Any]) -> tuple[SearchResult, ...]:
        if data.get("type") != "search":
            raise MalformedReply(self.name, "reply is not a search response")
        web = data.get("web")
        items = web.get("results") if isinstance(web, dict) else web
        return results_from(self.name, items, "title", "url", "description")

    def special_error(self, answer: Answer, detail: str) -> ProviderError | None:
        if error_text(answer, "error", "code") in TOKEN_CODES:
            return KeyRejected(self.name, describe(answer, detail))
        remaining = numbers(answer.headers.get("x-ratelimit-remaining"))
        if answer.status == 429 and len(remaining) > 1 and remaining[-1] <= 0:
            resets = numbers(answer.headers.get("x-ratelimit-reset"))
            spent_for = resets[-1] if len(resets) == len(remaining) else None
            return QuotaSpent(self.name, describe(answer, detail), spent_for)
        return None
