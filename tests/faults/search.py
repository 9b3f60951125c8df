"""Helpers of the search rows (G1-G5), shared by their tests and ``scripts/chaos``: fakes that
time each request, the environment of a search chain of fakes, and workflows that search."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from streamproc.outbound.providers.settings import KEY_VARIABLES
from streamproc.testing.fakes import Fakes, FakeSerpApi, FakeServer, LimitedSerpApi


class Timed(FakeServer):
    """Mixed into a fake: the monotonic time each request arrived."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: list[float] = []

    async def _handle(self, request: web.Request) -> web.Response:
        self.arrivals.append(time.monotonic())
        return await super()._handle(request)

    def since(self, moment: float) -> list[float]:
        return [t for t in self.arrivals if t >= moment]


class TimedSerpApi(Timed, FakeSerpApi):
    pass


class TimedLimitedSerpApi(Timed, LimitedSerpApi):
    pass


def busiest_second(arrivals: list[float]) -> int:
    """The most arrivals in any one-second window."""
    ordered = sorted(arrivals)
    return max((sum(1 for t in ordered[i:] if t < s + 1) for i, s in enumerate(ordered)), default=0)


def provider_env(fakes: Fakes, *names: str, **settings: str) -> dict[str, str]:
    """The environment of a search chain of only ``names``' fakes, in that order, with
    ``settings`` (``STREAMPROC_SERPAPI_RATE="5"``).  Every other search variable is empty,
    which the settings read as unset: a real key or limit of the caller's stays out."""
    env = {variable: "" for variable in KEY_VARIABLES.values()}
    for name in KEY_VARIABLES:
        for suffix in ("URL", "RATE", "BURST", "QUOTA", "BREAKER"):
            env[f"STREAMPROC_{name.upper()}_{suffix}"] = ""
    env |= {"STREAMPROC_SEARCH_TIMEOUT": "", "STREAMPROC_SEARCH_GIVE_UP": ""}
    env |= fakes.search_env()
    for name in KEY_VARIABLES.keys() - names:  # no key: not in the chain
        env[KEY_VARIABLES[name]] = ""
    return env | {"STREAMPROC_SEARCH_ORDER": ",".join(names)} | settings


@contextlib.asynccontextmanager
async def fakes_with(serpapi: FakeSerpApi) -> AsyncIterator[Fakes]:
    """Every fake, with ``serpapi`` standing in for SerpAPI (provider A)."""
    fakes = Fakes(retry_after=0, stall=30.0)
    fakes.serpapi = serpapi
    async with fakes:
        yield fakes


def searches(n: int, label: str, **task: Any) -> list[dict[str, Any]]:
    """``n`` one-task workflows of the execution agent, each with its own query (so the
    search cache answers none of them)."""
    return [
        {
            "tasks": [
                {"id": "search", "agent": "execution", "input": {"description": f"{label} {i}"}}
                | task
            ]
        }
        for i in range(n)
    ]
