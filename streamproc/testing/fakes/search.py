"""Fake SerpAPI, Brave, Tavily and Bing servers, each in its API's documented wire format.

Error texts are the providers' own where they publish them; SerpAPI does not publish its
hourly-limit text, so that one is only plausible.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from streamproc.testing.fakes.server import Behaviour, FakeServer, json_reply

Found = list[tuple[str, str, str]]


class FakeSerpApi(FakeServer):
    name = "serpapi"
    path = "/search.json"

    def presented_key(self, request: web.Request) -> str | None:
        return request.query.get("api_key")

    async def read_query(self, request: web.Request) -> tuple[str, int]:
        return request.query.get("q", ""), int(request.query.get("num", "10"))

    def answer(self, query: str, found: Found) -> dict[str, Any]:
        reply: dict[str, Any] = {
            "search_metadata": {"id": f"fake-{self.requests}", "status": "Success"},
            "search_parameters": {"engine": "google", "q": query},
        }
        if not found:
            reply["error"] = "Google hasn't returned any results for this query."
            return reply
        organic = [
            {"position": n, "title": title, "link": url, "snippet": snippet}
            for n, (title, url, snippet) in enumerate(found, start=1)
        ]
        return {**reply, "organic_results": organic}

    def refuse(self, behaviour: Behaviour, presented: str) -> web.Response:
        if behaviour is Behaviour.UNAUTHORIZED:
            text = (
                "Invalid API key. Your API key should be here: https://serpapi.com/manage-api-key"
            )
            return json_reply({"error": text}, 401)
        if behaviour is Behaviour.QUOTA_SPENT:
            return json_reply({"error": "Your account has run out of searches."}, 429)
        text = "You have exceeded the hourly throughput limit for your plan. Try again later."
        return json_reply({"error": text}, 429, {"Retry-After": self.wait_header})


class FakeBrave(FakeServer):
    name = "brave"
    path = "/res/v1/web/search"
    limit = "1, 2000"

    def presented_key(self, request: web.Request) -> str | None:
        return request.headers.get("X-Subscription-Token")

    def answer(self, query: str, found: Found) -> dict[str, Any]:
        reply: dict[str, Any] = {"type": "search", "query": {"original": query}}
        if found:
            results = [{"title": t, "url": u, "description": d} for t, u, d in found]
            reply["web"] = {"type": "search", "results": results}
        return reply

    def refuse(self, behaviour: Behaviour, presented: str) -> web.Response:
        if behaviour is Behaviour.UNAUTHORIZED:
            return self._error(
                422, "SUBSCRIPTION_TOKEN_INVALID", "The provided subscription token is invalid.", {}
            )
        if behaviour is Behaviour.QUOTA_SPENT:
            windows = {"X-RateLimit-Remaining": "1, 0", "X-RateLimit-Reset": "1, 1419704"}
            return self._error(
                429, "QUOTA_LIMITED", "Request quota limit exceeded for plan.", windows
            )
        windows = {
            "X-RateLimit-Remaining": "0, 1500",
            "X-RateLimit-Reset": f"{self.wait_header}, 1419704",
        }
        return self._error(429, "RATE_LIMITED", "Request rate limit exceeded for plan.", windows)

    def _error(self, status: int, code: str, detail: str, windows: dict[str, str]) -> web.Response:
        body = {
            "type": "ErrorResponse",
            "error": {"status": status, "code": code, "detail": detail},
        }
        return json_reply(body, status, {"X-RateLimit-Limit": self.limit, **windows})


class FakeTavily(FakeServer):
    name = "tavily"
    method = "POST"
    path = "/search"

    def presented_key(self, request: web.Request) -> str | None:
        return request.headers.get("Authorization", "").removeprefix("Bearer ") or None

    async def read_query(self, request: web.Request) -> tuple[str, int]:
        body = orjson.loads(await request.read())
        return str(body.get("query", "")), int(body.get("max_results", 5))

    def answer(self, query: str, found: Found) -> dict[str, Any]:
        results = [
            {
                "title": t,
                "url": u,
                "content": c,
                "score": round(0.9 - n / 10, 2),
                "raw_content": None,
            }
            for n, (t, u, c) in enumerate(found)
        ]
        return {
            "query": query,
            "answer": None,
            "images": [],
            "results": results,
            "response_time": 0.01,
        }

    def refuse(self, behaviour: Behaviour, presented: str) -> web.Response:
        if behaviour is Behaviour.UNAUTHORIZED:
            return json_reply(
                {"detail": {"error": "Unauthorized: missing or invalid API key."}}, 401
            )
        if behaviour is Behaviour.QUOTA_SPENT:
            text = "This request exceeds your plan's set usage limit. Please upgrade your plan."
            return json_reply({"detail": {"error": text}}, 432)
        text = (
            "Your request has been blocked due to excessive requests. "
            "Please reduce rate of requests."
        )
        return json_reply({"detail": {"error": text}}, 429, {"Retry-After": self.wait_header})


class FakeBing(FakeServer):
    name = "bing"
    path = "/v7.0/search"

    def presented_key(self, request: web.Request) -> str | None:
        return request.headers.get("Ocp-Apim-Subscription-Key")

    def answer(self, query: str, found: Found) -> dict[str, Any]:
        reply: dict[str, Any] = {
            "_type": "SearchResponse",
            "queryContext": {"originalQuery": query},
        }
        if found:
            value = [
                {"id": f"#{n}", "name": t, "url": u, "snippet": s}
                for n, (t, u, s) in enumerate(found)
            ]
            reply["webPages"] = {"totalEstimatedMatches": len(found), "value": value}
        return reply

    def refuse(self, behaviour: Behaviour, presented: str) -> web.Response:
        if behaviour is Behaviour.UNAUTHORIZED:
            text = "Access denied due to invalid subscription key."
            return json_reply({"error": {"code": "401", "message": text}}, 401)
        if behaviour is Behaviour.QUOTA_SPENT:
            text = "Out of call volume quota. Quota will be replenished in 2.12:34:56."
            return json_reply({"error": {"code": "403", "message": text}}, 403)
        errors = [{"code": "RateLimitExceeded", "message": "Rate limit is exceeded."}]
        return json_reply(
            {"_type": "ErrorResponse", "errors": errors}, 429, {"Retry-After": self.wait_header}
        )
