"""Adaptive read batching: wait a moment after a short read while entries arrive fast.

A reader that wakes for every entry pays a round trip per task, in its own CPU and in Redis's,
and on a busy machine that CPU is taken from the producers.  So after a read that returned
some entries but fewer than it asked for, a reader waits ``min(max_wait, target / rate)``
before reading again, where ``rate`` is the entries a second it read over about the last
``window``.  Below ``busy_rate`` it reads again at once: at low rates round trips are cheap
and latency counts.

The rate is averaged over time, not over reads: every read's entries count ``1 / window``
and what came before decays with the time since.  Two entries of a steady trickle that
happen to arrive a few microseconds apart (one read each) are not a burst of a hundred
thousand a second, as they were when each read's own rate was averaged in: at 1,000 hops a
second, ``scripts/bench --only chain`` lingered after such pairs, and its hop p99 was
1.7-1.8 ms against 0.7-0.9 ms without lingering, as it now reads at that rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Linger:
    target: int
    max_wait: float
    busy_rate: float = 2000.0
    window: float = 0.1  # seconds the rate is averaged over
    clock: Callable[[], float] = time.monotonic
    rate: float = 0.0
    _last: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self._last = self.clock()

    def after_read(self, got: int, asked: int) -> float:
        """Seconds to wait before the next read, given what this one returned."""
        now = self.clock()
        elapsed, self._last = now - self._last, now
        if got == 0:  # the stream stayed empty for a whole blocking read
            self.rate = 0.0
            return 0.0
        self.rate = self.rate * math.exp(-elapsed / self.window) + got / self.window
        if got >= asked or self.rate < self.busy_rate:
            return 0.0
        return min(self.max_wait, self.target / self.rate)
