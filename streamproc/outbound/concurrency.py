"""Adaptive concurrency per external API: how many calls may be in flight at once, learnt from
how the API answers (AIMD with a latency signal, after Netflix's concurrency-limits).

No API says how much concurrency it takes, and the answer moves with its load and ours, so
the limit is found the way TCP finds a window:

* a *drop* cuts the limit to ``limit * backoff`` (never below ``min_limit``).  A drop is a 429,
  a timeout, or a reply slower than ``tolerance`` times the minimum RTT of the last
  ``rtt_window`` replies: queueing shows up as latency before it shows up as errors;
* a success adds ``1 / limit`` (about one per round of ``limit`` calls, never above
  ``max_limit``), but only while at least half the limit was in use when the call started:
  a limit that was not the constraint has not been shown to be too small;
* a drop from a call that started before the last cut is ignored.  A burst of 429s from
  calls sent under the old limit is one signal, not ten; counting each would collapse the
  limit to its floor and set it flapping between floor and recovery.

Within a process only: each process learns its own share, as each TCP sender does.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import Enum

from streamproc.errors import ConfigError


class Outcome(Enum):
    SUCCESS = "success"
    DROPPED = "dropped"  # overload: 429, timeout
    IGNORED = "ignored"  # says nothing about load: a rejected key, a malformed reply


@dataclass(frozen=True)
class ConcurrencySettings:
    """Bounds and reflexes of :class:`AdaptiveLimit` (see the module docstring)."""

    initial: int = 8
    min_limit: int = 1
    max_limit: int = 64
    backoff: float = 0.5
    tolerance: float = 2.0
    rtt_window: int = 100

    def __post_init__(self) -> None:
        if not 1 <= self.min_limit <= self.initial <= self.max_limit:
            raise ConfigError("concurrency limits need 1 <= min_limit <= initial <= max_limit")
        if not 0 < self.backoff < 1 or self.tolerance <= 1 or self.rtt_window < 1:
            raise ConfigError("concurrency needs 0 < backoff < 1, tolerance > 1, rtt_window >= 1")


@dataclass
class Slot:
    """One call in flight; :meth:`dropped` marks it as an overload signal."""

    started: float
    in_flight: int
    outcome: Outcome | None = field(default=None)

    def dropped(self) -> None:
        self.outcome = Outcome.DROPPED


class AdaptiveLimit:
    """``async with limit.slot() as slot: ...``: waits (first come, first served) while the
    limit is full.  A block that ends normally is a success unless the slot says otherwise; one
    that raises is ignored unless it called :meth:`Slot.dropped` first."""

    def __init__(
        self,
        settings: ConcurrencySettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or ConcurrencySettings()
        self.clock = clock
        self.limit = float(self.settings.initial)
        self.in_flight = 0
        self._rtts: deque[float] = deque(maxlen=self.settings.rtt_window)
        self._last_cut = -math.inf
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def capacity(self) -> int:
        return max(self.settings.min_limit, int(self.limit))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Slot]:
        await self._acquire()
        slot = Slot(self.clock(), self.in_flight)
        try:
            yield slot
        except BaseException:
            slot.outcome = slot.outcome or Outcome.IGNORED
            raise
        finally:
            self.in_flight -= 1
            self.sample(slot.started, slot.in_flight, slot.outcome or Outcome.SUCCESS)
            self._wake()

    def sample(self, started: float, in_flight: int, outcome: Outcome) -> None:
        """Adjust the limit for one finished call (public for tests that replay a sequence)."""
        if outcome is Outcome.IGNORED:
            return
        now = self.clock()
        if outcome is Outcome.SUCCESS:
            rtt = now - started
            floor = min(self._rtts, default=rtt)
            self._rtts.append(rtt)
            if rtt > self.settings.tolerance * floor:
                outcome = Outcome.DROPPED
        s = self.settings
        if outcome is Outcome.DROPPED:
            if started >= self._last_cut:
                self.limit = max(float(s.min_limit), self.limit * s.backoff)
                self._last_cut = now
        elif in_flight * 2 >= self.limit:
            self.limit = min(float(s.max_limit), self.limit + 1 / self.limit)

    async def _acquire(self) -> None:
        if self.in_flight < self.capacity and not self._waiters:
            self.in_flight += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled():  # granted as it was cancelled
                self.in_flight -= 1
                self._wake()
            raise

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.capacity:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)
