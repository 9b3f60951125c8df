"""SerpAPI's Google engine: ``GET {base}/search.json?engine=google&q=&num=&api_key=``.

Results are ``organic_results[]`` with ``title``, ``link`` and ``snippet``.  SerpAPI answers
HTTP 429 both when the hourly throughput limit is hit and when the account has run out of
searches; only the JSON ``error`` text tells them apart, so the second becomes
:class:`QuotaSpent` (switch provider) and the first :class:`RateLimited`.  A search Google has
no results for comes back as HTTP 200 with an ``error`` text, and is an empty reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from streamproc.errors import MalformedReply, ProviderError, QuotaSpent
from streamproc.outbound.http import Answer
from streamproc.outbound.providers.base import (
    DETAIL_CHARS,
    JsonSearchApi,
    Request,
    SearchResult,
    describe,
    results_from,
)

SPENT = re.compile(r"run out of searches|searches for the month are exhausted", re.IGNORECASE)
NO_RESULTS = re.compile(r"hasn't returned any results", re.IGNORECASE)


@dataclass(frozen=True)
class SerpApi(JsonSearchApi):
    name = "serpapi"
    error_at = (("error",),)

    def request_for(self, query: str, count: int) -> Request:
        return Request(
            "GET",
            "/search.json",
            params={"engine": "google", "q": query, "num": count, "api_key": self.key.reveal()},
        )

    def results_in(self, data: dict[str, Any]) -> tuple[SearchResult, ...]:
        if not isinstance(data.get("search_metadata"), dict):
            raise MalformedReply(self.name, "reply has no search_metadata object")
        error = data.get("error")
        if isinstance(error, str) and not NO_RESULTS.search(error):
            raise ProviderError(self.name, self.key.scrub(error[:DETAIL_CHARS]))
        return results_from(self.name, data.get("organic_results"), "title", "link", "snippet")

    def special_error(self, answer: Answer, detail: str) -> ProviderError | None:
        if answer.status == 429 and SPENT.search(detail):
            return QuotaSpent(self.name, describe(answer, detail))
        return None
