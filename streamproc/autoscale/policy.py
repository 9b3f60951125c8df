"""Autoscaling decisions: how many consumers one agent type needs, without flapping.

The need is Little's law plus a drain term, clamped to ``[min_consumers, max_consumers]``::

    needed = ceil(latency * (rate + backlog / drain_target))

``rate * latency`` consumers keep up with arrivals: each of ``rate`` tasks a second holds a
consumer for ``latency`` seconds.  ``backlog * latency / drain_target`` more clear what already
waits (the group's lag plus its pending entries) within ``drain_target`` seconds.  The backlog
term is weighted by latency so that it counts consumers, not entries per second: a backlog of
quick tasks needs fewer consumers than one of slow tasks.  Until a task has reported its
latency, a task is assumed to take ``UNKNOWN_LATENCY`` (1 s), where the formula reads
``ceil(rate + backlog / drain_target)``.

Scaling up is immediate: a backlog that waits for a cool-down only grows.  Scaling down is
where flapping comes from, so it takes hysteresis: the count drops only once the need has
stayed under ``current * (1 - margin)`` for a whole ``cooldown`` window, then only to the
highest need seen in that window, and by at most ``step_down * current`` at once; each step
opens a new window.  A noisy load therefore settles at its peak instead of following each dip.

Pure functions of their inputs, clock included (``now``), so synthetic series test them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from streamproc.config import AutoscaleSettings

UNKNOWN_LATENCY = 1.0


@dataclass(frozen=True, slots=True)
class Load:
    """One agent type's load, summed over shards and averaged over live processes."""

    backlog: int  # entries in the group's lag plus its pending entries
    rate: float  # entries added per second
    latency: float | None  # mean task duration in seconds; None until a task has finished

    def __str__(self) -> str:
        """Rounded for the scaling log line; the repr keeps the exact figures."""
        latency = "unknown" if self.latency is None else f"{self.latency:.3g}s"
        return f"backlog {self.backlog}, rate {self.rate:.1f}/s, latency {latency}"


def needed(load: Load, low: int, high: int, drain_target: float) -> int:
    """The module docstring's formula, clamped to ``[low, high]``."""
    latency = UNKNOWN_LATENCY if load.latency is None else load.latency
    busy = latency * (max(load.rate, 0.0) + max(load.backlog, 0) / drain_target)
    return max(low, min(high, math.ceil(round(busy, 9))))


class ArrivalRate:
    """Entries per second from successive readings of the streams' ``entries-added``."""

    def __init__(self) -> None:
        self._last: tuple[float, int] | None = None

    def update(self, now: float, added: int) -> float:
        """The rate since the previous reading; 0 for the first one, or when the counter went
        back (a stream was deleted and recreated) or the clock did not move."""
        last, self._last = self._last, (now, added)
        if last is None or now <= last[0] or added < last[1]:
            return 0.0
        return (added - last[1]) / (now - last[0])


class Scaler:
    """The desired count of one agent type, from one load reading to the next."""

    def __init__(self, settings: AutoscaleSettings, concurrency: int) -> None:
        self.settings = settings
        self.low, self.high = settings.bounds(concurrency)
        self._window: tuple[int, float, int] | None = None  # (for count, opened at, peak need)

    def decide(self, now: float, load: Load, current: int | None) -> int:
        """The count to publish, given the load and the count published so far (if any)."""
        need = needed(load, self.low, self.high, self.settings.drain_target)
        if current is None or need >= current or current > self.high:
            self._window = None
            return need
        if need > current * (1 - self.settings.margin):
            self._window = None  # close enough: hold
            return current
        window = self._window
        if window is None or window[0] != current:
            self._window = (current, now, need)
            return current
        peak = max(window[2], need)
        if now - window[1] < self.settings.cooldown:
            self._window = (current, window[1], peak)
            return current
        step = max(1, math.floor(current * self.settings.step_down))
        count = max(peak, current - step, self.low)
        self._window = (count, now, need) if count > need else None
        return count


def share(desired: int, live: int, concurrency: int) -> int:
    """One process's slots for an agent: an equal share rounded up, so the shares of ``live``
    processes sum to at least ``desired``, capped by the process's own ``concurrency``."""
    return min(concurrency, math.ceil(desired / max(live, 1)))
