"""Adaptive read batching: wait a moment after a short read while entries arrive fast.

A reader that wakes for every entry pays a round trip per task, in its own CPU and in Redis's,
and on a busy machine that CPU is taken from the producers.  So after a read that returned
some entries but fewer than it asked for, a reader waits ``min(max_wait, target / rate)``
before reading again, where ``rate`` is a moving average of entries per second.  Below
``busy_rate`` it reads again at once: at low rates round trips are cheap and latency counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Linger:
    target: int
    max_wait: float
    busy_rate: float = 2000.0
    smoothing: float = 0.2
    clock: Callable[[], float] = time.monotonic
    rate: float = 0.0
    _last: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self._last = self.clock()

    def after_read(self, got: int, asked: int) -> float:
        """Seconds to wait before the next read, given what this one returned."""
        now = self.clock()
        elapsed, self._last = now - self._last, now
        if got == 0:
            self.rate = 0.0
            return 0.0
        instant = got / max(elapsed, 1e-6)
        self.rate += self.smoothing * (instant - self.rate)
        if got >= asked or self.rate < self.busy_rate:
            return 0.0
        return min(self.max_wait, self.target / self.rate)
