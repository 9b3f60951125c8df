"""Worker side of ``scripts/bench_balance``: imported by its worker processes
(``streamproc worker --import bench_balance_worker``, ``PYTHONPATH=scripts``) for the two
baseline configurations, named in ``BENCH_BALANCE_MODE``.

Both baselines turn the search layer's adaptive concurrency limit into a fixed one
(``min = initial = max = FIXED``): there is no environment variable for it, so this module
swaps the settings object on the search chain's guard as the agents' toolkit is built.

``prototype`` also puts the prototype's ``adjust_thread_count`` in front of every search of
the process (:class:`PrototypeGate`); its ceiling of 5 stays below ``FIXED``, so the gate is
what limits.  ``fixed`` leaves ``FIXED`` (with the worker's ``--concurrency``) as the limit.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from statistics import fmean

from streamproc.outbound.providers import ConcurrencySettings, SearchReply
from streamproc.runtime import Runtime
from streamproc_agents import toolkit as toolkit_module
from streamproc_agents.toolkit import Toolkit

FIXED = ConcurrencySettings(initial=32, min_limit=32, max_limit=32)
MODE = os.environ.get("BENCH_BALANCE_MODE", "")


def adjust_thread_count(task_count: int, avg_response_time: float) -> int:
    """The prototype's rule, verbatim: slow answers -> 2, many ready tasks -> 5, else 3."""
    if avg_response_time > 2:
        return max(1, min(task_count, 2))
    if task_count > 5:
        return min(task_count, 5)
    return min(task_count, 3)


class PrototypeGate:
    """The prototype's thread count as a limit on one process's searches in flight.

    The prototype sizes a thread pool per round from its ready tasks and the mean of its last
    10 response times (1 s before any).  Here the ready tasks are the searches this process
    holds (waiting here or running), the response time is each search call's duration, errors
    and retries included as in the prototype, and the limit is recomputed whenever a search
    arrives or leaves rather than once per round (a worker has no rounds).
    """

    def __init__(self) -> None:
        self.response_times: deque[float] = deque(maxlen=10)
        self.ready = 0
        self.running = 0
        self._changed = asyncio.Condition()

    def limit(self) -> int:
        average = fmean(self.response_times) if self.response_times else 1.0
        return adjust_thread_count(self.ready, average)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self.ready += 1
        try:
            async with self._changed:
                await self._changed.wait_for(lambda: self.running < self.limit())
                self.running += 1
            started = time.monotonic()
            try:
                yield
            finally:
                self.response_times.append(time.monotonic() - started)
                self.running -= 1
        finally:
            self.ready -= 1
            async with self._changed:
                self._changed.notify_all()


@dataclass
class PrototypeToolkit(Toolkit):
    gate: PrototypeGate = field(default_factory=PrototypeGate)

    async def search(self, query: str) -> SearchReply:
        async with self.gate.slot():
            return await super().search(query)


_build = toolkit_module.build


def _build_baseline(runtime: Runtime) -> Toolkit:
    kit = _build(runtime)
    if kit.search_cache is not None:
        kit.search_cache.chain.guard.concurrency = FIXED
    if MODE == "prototype":
        return PrototypeToolkit(kit.search_cache, kit.llm, kit.give_up_after, kit.outbound)
    return kit


if MODE in ("prototype", "fixed"):
    toolkit_module.build = _build_baseline
