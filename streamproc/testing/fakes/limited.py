"""A fake SerpAPI that behaves like a loaded, rate-limited API, for load-balancing benchmarks.

Two things make a real search API push back, and this fake models both:

* a rate limit: a token bucket of ``burst`` tokens refilled at ``rate`` per second.  A request
  that finds no token is refused at once with SerpAPI's hourly-limit 429 and a whole-second
  ``Retry-After`` (rounded up, at least 1), as real APIs send it;
* congestion: an admitted request takes ``base_latency + per_in_flight * n`` seconds, where
  ``n`` is how many other admitted requests were in flight when it arrived.

Counters (``served``, ``rejected``, ``peak_in_flight``) only grow, so a caller measures a window
by taking the difference of two readings.
"""

from __future__ import annotations

import asyncio
import math
import time

from aiohttp import web

from streamproc.testing.fakes.search import FakeSerpApi
from streamproc.testing.fakes.server import json_reply

RATE_TEXT = "You have exceeded the hourly throughput limit for your plan. Try again later."


class LimitedSerpApi(FakeSerpApi):
    """``LimitedSerpApi(rate=20)``: at most ``rate`` answers a second on average, slower the
    more requests are in flight."""

    def __init__(
        self,
        key: str | None = None,
        *,
        rate: float = 20.0,
        burst: int | None = None,
        base_latency: float = 0.05,
        per_in_flight: float = 0.02,
    ) -> None:
        """``burst`` defaults to one second's worth of ``rate``: a client that keeps to the
        rate on average is never refused for a few milliseconds of jitter."""
        super().__init__(key)
        self.rate = rate
        self.burst = burst or max(1, math.ceil(rate))
        self.base_latency = base_latency
        self.per_in_flight = per_in_flight
        self.served = 0
        self.rejected = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self._tokens = float(self.burst)
        self._refilled = time.monotonic()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        wait = self._take_token()
        if wait is not None:
            self.requests += 1
            self.rejected += 1
            retry_after = str(max(1, math.ceil(wait)))
            return json_reply({"error": RATE_TEXT}, 429, {"Retry-After": retry_after})
        others = self.in_flight
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.base_latency + self.per_in_flight * others)
            reply = await super()._handle(request)
        finally:
            self.in_flight -= 1
        self.served += reply.status == 200
        return reply

    def _take_token(self) -> float | None:
        """Take a token and return None, or return the seconds until one is due."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        return (1 - self._tokens) / self.rate
