"""Bing Web Search v7: ``GET {base}/v7.0/search?q=&count=``, key in
``Ocp-Apim-Subscription-Key``.

Microsoft retired the Bing Search APIs in August 2025; this stays for endpoints that still
speak the v7 format, and takes part only when ``BING_API_KEY`` is set.  Results are
``webPages.value[]`` with ``name``, ``url`` and ``snippet``.  Bing uses 403 both for a key
without permission and for a spent daily or monthly quota; the error text tells them apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from streamproc.errors import MalformedReply, ProviderError, QuotaSpent
from streamproc.outbound.http import Answer
from streamproc.outbound.providers.base import (
    JsonSearchApi,
    Request,
    SearchResult,
    describe,
    results_from,
)

SPENT = re.compile(r"quota", re.IGNORECASE)


@dataclass(frozen=True)
class Bing(JsonSearchApi):
    name = "bing"
    # v7 errors are {"errors": [{"code", "message"}]}; the Azure gateway's {"error": {...}}.
    error_at = (("errors", 0, "message"), ("error", "message"))

    def request_for(self, query: str, count: int) -> Request:
        headers = {"Ocp-Apim-Subscription-Key": self.key.reveal()}
        return Request("GET", "/v7.0/search", params={"q": query, "count": count}, headers=headers)

    def results_in(self, data: dict[str, Any]) -> tuple[SearchResult, ...]:
        if data.get("_type") != "SearchResponse":
            raise MalformedReply(self.name, "reply is not a SearchResponse")
        pages = data.get("webPages")
        items = pages.get("value") if isinstance(pages, dict) else pages
        return results_from(self.name, items, "name", "url", "snippet")

    def special_error(self, answer: Answer, detail: str) -> ProviderError | None:
        if answer.status == 403 and SPENT.search(detail):
            return QuotaSpent(self.name, describe(answer, detail))
        return None
