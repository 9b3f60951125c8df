"""Tavily search: ``POST {base}/search`` with JSON ``{query, max_results}`` and
``Authorization: Bearer <key>``.

Results are ``results[]`` with ``title``, ``url`` and ``content``.  Errors carry their text at
``detail.error``.  429 asks us to slow down; 432 (plan limit) and 433 (pay-as-you-go limit)
mean the allowance is spent until the plan renews or the limit is raised.
"""

from __future__ import annotations

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

PLAN_LIMIT = 432
PAY_AS_YOU_GO_LIMIT = 433


@dataclass(frozen=True)
class Tavily(JsonSearchApi):
    name = "tavily"
    error_at = (("detail", "error"),)

    def request_for(self, query: str, count: int) -> Request:
        headers = {"Authorization": f"Bearer {self.key.reveal()}"}
        payload = {"query": query, "max_results": count}
        return Request("POST", "/search", headers=headers, payload=payload)

    def results_in(self, data: dict[str, Any]) -> tuple[SearchResult, ...]:
        if "results" not in data:
            raise MalformedReply(self.name, "reply has no results list")
        return results_from(self.name, data["results"], "title", "url", "content")

    def special_error(self, answer: Answer, detail: str) -> ProviderError | None:
        if answer.status in (PLAN_LIMIT, PAY_AS_YOU_GO_LIMIT):
            return QuotaSpent(self.name, describe(answer, detail))
        return None
