"""The scriptable local server every fake API is built on.

A fake listens on 127.0.0.1 on a free port, counts the requests it gets, and answers each one
with the next :class:`Behaviour` of its script (``fake.script(...)``), or with
``fake.behaviour`` once the script is used up.  A request without the right key is refused
the way the real API refuses it.  Subclasses speak one API's wire format.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from abc import ABC, abstractmethod
from collections import deque
from enum import StrEnum
from typing import Any, ClassVar

import orjson
from aiohttp import web


class Behaviour(StrEnum):
    NORMAL = "normal"
    EMPTY = "empty"  # a valid reply with no results
    RATE_LIMITED = "rate-limited"  # 429 with a wait (SerpAPI: its hourly-limit text)
    QUOTA_SPENT = "quota-spent"  # SerpAPI out of searches, Tavily 432, Brave monthly 0, ...
    UNAUTHORIZED = "unauthorized"  # the API's refusal of a bad key (401, Brave 422)
    SERVER_ERROR = "server-error"  # 500
    UNAVAILABLE = "unavailable"  # 503
    SLOW = "slow"  # answers normally, but only after ``stall`` seconds
    MALFORMED = "malformed"  # truncated JSON
    WRONG_SHAPE = "wrong-shape"  # JSON, but not the API's reply
    BROKEN_STREAM = "broken-stream"  # a streamed reply (LLM): a few pieces, then a cut chunk
    CUT_STREAM = "cut-stream"  # a streamed reply (LLM) that ends without its [DONE]
    OFF_FORMAT = "off-format"  # a chat reply (LLM) in prose where a JSON array was asked


ANGLES = ("an overview", "a practical guide", "common questions")  # of each query's results


def json_reply(
    data: object, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, headers=headers, content_type="application/json"
    )


def results_for(
    query: str, count: int, links: str = "https://example.org"
) -> list[tuple[str, str, str]]:
    """Up to three deterministic (title, url, snippet) results that mention the query, their
    URLs under ``links``."""
    words = query.split() or ["nothing"]
    slug = re.sub(r"[^a-z0-9]+", "-", query.lower()).strip("-")[:60] or "nothing"
    return [
        (
            f"{query[:1].upper()}{query[1:]}: {angle}",
            f"{links}/{slug}/{n}",
            f"{angle.capitalize()} of {query}, covering {' and '.join(words[:3])} with examples.",
        )
        for n, angle in enumerate(ANGLES[: max(0, count)], start=1)
    ]


class FakeServer(ABC):
    """Base of the fakes: scripting, request counting, key checks and the generic failures."""

    name: ClassVar[str]
    method: ClassVar[str] = "GET"
    path: ClassVar[str]

    def __init__(
        self,
        key: str | None = None,
        *,
        retry_after: float = 1.0,
        stall: float = 30.0,
        latency: float = 0.0,
        links: str = "https://example.org",
    ) -> None:
        """``latency``: seconds every answer takes, as a real API's would (the demo's);
        ``links``: where the results' URLs point (a local page server, for page reads)."""
        self.key = key or f"fake-{self.name}-key"
        self.links = links
        self.retry_after = retry_after
        self.stall = stall
        self.latency = latency
        self.behaviour = Behaviour.NORMAL
        self.requests = 0
        self.url = ""
        self._script: deque[Behaviour] = deque()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        """What a client is configured with (``STREAMPROC_<NAME>_URL``)."""
        return self.url

    @property
    def address(self) -> str:
        """``host:port``, as ``STREAMPROC_<NAME>_PLAIN_HTTP`` allows a plain-http stand-in."""
        return self.url.removeprefix("http://")

    def script(self, *behaviours: Behaviour) -> None:
        self._script.extend(behaviours)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route(self.method, self.path, self._handle)
        # No access log: SerpAPI's key travels in the query string it would print.
        self._runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=1.0, handler_cancellation=True
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.base_url

    async def close(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        behaviour = self._script.popleft() if self._script else self.behaviour
        if self.latency:
            await asyncio.sleep(self.latency)
        if behaviour is Behaviour.SLOW:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.stall)
        if behaviour is Behaviour.MALFORMED:
            return web.Response(body=b'{"results": [{"title": ', content_type="application/json")
        presented = self.presented_key(request)
        if behaviour is Behaviour.UNAUTHORIZED or presented != self.key:
            return self.refuse(Behaviour.UNAUTHORIZED, presented or "")
        if behaviour is Behaviour.SERVER_ERROR:
            return web.Response(status=500, text="<html><h1>500 Internal Server Error</h1></html>")
        if behaviour is Behaviour.UNAVAILABLE:
            return web.Response(status=503, text="<html><h1>503 Service Unavailable</h1></html>")
        if behaviour in (Behaviour.RATE_LIMITED, Behaviour.QUOTA_SPENT):
            return self.refuse(behaviour, presented)
        if behaviour is Behaviour.WRONG_SHAPE:
            return json_reply({"message": "hello", "items": "not what you expected"})
        query, count = await self.read_query(request)
        found = results_for(query, 0 if behaviour is Behaviour.EMPTY else count, self.links)
        return await self.reply(request, behaviour, self.answer(query, found))

    @property
    def wait_header(self) -> str:
        return f"{self.retry_after:g}"

    @abstractmethod
    def presented_key(self, request: web.Request) -> str | None: ...

    async def read_query(self, request: web.Request) -> tuple[str, int]:
        return request.query.get("q", ""), int(request.query.get("count", "10"))

    @abstractmethod
    def answer(self, query: str, found: list[tuple[str, str, str]]) -> dict[str, Any]: ...

    async def reply(
        self, request: web.Request, behaviour: Behaviour, answer: dict[str, Any]
    ) -> web.StreamResponse:
        """Send ``answer``: as JSON, unless the API streams it (the LLM's)."""
        return json_reply(answer)

    @abstractmethod
    def refuse(self, behaviour: Behaviour, presented: str) -> web.Response:
        """The API's reply for UNAUTHORIZED, RATE_LIMITED and QUOTA_SPENT."""
