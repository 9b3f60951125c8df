"""Tavily search: ``POST {base}/search`` with JSON ``{query, max_results}`` and
``Authorization: Bearer <key>``.

Results are ``results[]`` with ``title``, ``url`` and ``content``.  Errors carry their text at
``detail.error``.  429 asks us to slow down; 432 (plan limit) and 433 (pay-as-you-go limit)
mean the allowance is spent until the plan renews or the limit is raised.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

from streamproc.errors import MalformedReply, ProviderError, QuotaSpent
from streamproc.outbound.http import Answer
from streamproc.outbound.providers.base import (
    JsonSearchApi,
    SearchReply,
    classify,
    describe,
    error_text,
    reply,
    results_from,
)

PLAN_LIMIT = 432
PAY_AS_YOU_GO_LIMIT = 433


@dataclass(frozen=True)
class Tavily(JsonSearchApi):
    name: ClassVar[str] = "tavily"

    async def search(self, query: str, count: int) -> SearchReply:
        started = time.monotonic()
        data = await self.exchange(
            "POST",
            "/search",
            headers={"Authorization": f"Bearer {self.key.reveal()}"},
            payload={"query": query, "max_results": count},
        )
        if "results" not in data:
            raise MalformedReply(self.name, "reply has no results list")
        found = results_from(self.name, data["results"], "title", "url", "content")
        return reply(self.name, query, found, started)

    def error_for(self, answer: Answer) -> ProviderError:
        detail = self.key.scrub(error_text(answer, "detail", "error"))
        if answer.status in (PLAN_LIMIT, PAY_AS_YOU_GO_LIMIT):
            return QuotaSpent(self.name, describe(answer, detail))
        return classify(self.name, answer, detail)
