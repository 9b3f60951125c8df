"""What limits an external API: its shared rate, quota and circuit breaker (see ``limiter``).

Read from the environment by :func:`limits_from_env` (called by ``SearchSettings.from_env``).
"""

from __future__ import annotations

import calendar
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from streamproc.errors import ConfigError


@dataclass(frozen=True)
class Quota:
    """``calls`` per UTC ``period``."""

    calls: int
    period: Literal["day", "month"]

    def window(self, now: float) -> tuple[str, float]:
        """The period holding epoch time ``now``: its name and the seconds left in it."""
        at = datetime.fromtimestamp(now, UTC)
        if self.period == "day":
            start = at.replace(hour=0, minute=0, second=0, microsecond=0)
            return start.strftime("d%Y%m%d"), start.timestamp() + 86400 - now
        days = calendar.monthrange(at.year, at.month)[1]
        start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return start.strftime("m%Y%m"), start.timestamp() + days * 86400 - now


@dataclass(frozen=True)
class BreakerSettings:
    enabled: bool = True
    failures: int = 5
    ratio: float = 0.5
    min_calls: int = 20
    window: float = 60.0
    cooldown: float = 30.0
    probe_timeout: float = 60.0


@dataclass(frozen=True)
class LimitSettings:
    """One API's shared limits; by default no rate limit and no quota, breaker on."""

    rate: float | None = None  # calls per second, all workers together
    burst: int = 1
    max_wait: float = 1.0  # a longer rate wait skips to the next provider
    quota: Quota | None = None
    breaker: BreakerSettings = field(default_factory=BreakerSettings)

    def __post_init__(self) -> None:
        if (self.rate is not None and self.rate <= 0) or self.burst < 1 or self.max_wait < 0:
            raise ConfigError("a rate limit needs rate > 0, burst >= 1 and max_wait >= 0")


PER = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
}


def parse_rate(text: str) -> float:
    """``"5"``, ``"5/s"``, ``"300/min"``, ``"1000/h"`` -> calls per second."""
    count, _, unit = text.strip().partition("/")
    try:
        rate = float(count) / PER[unit.strip().lower() or "s"]
    except (KeyError, ValueError):
        raise ConfigError(f"unreadable rate {text!r}: use calls/s, calls/min or calls/h") from None
    if rate <= 0:
        raise ConfigError(f"rate {text!r} must be positive")
    return rate


def parse_quota(text: str) -> Quota:
    """``"1000/day"`` or ``"5000/month"``."""
    count, _, period = text.strip().partition("/")
    period = period.strip().lower()
    if not count.strip().isdigit() or period not in ("day", "month"):
        raise ConfigError(f"unreadable quota {text!r}: use N/day or N/month")
    return Quota(int(count), "day" if period == "day" else "month")


def limits_from_env(environ: Mapping[str, str], names: Iterable[str]) -> dict[str, LimitSettings]:
    """``STREAMPROC_<NAME>_RATE``, ``_BURST``, ``_QUOTA`` and ``_BREAKER`` (on/off) for each
    named API that sets any of them."""
    limits = {}
    for name in names:
        get = functools.partial(_variable, environ, name)
        rate, burst, quota, breaker = get("RATE"), get("BURST"), get("QUOTA"), get("BREAKER")
        if not (rate or burst or quota or breaker):
            continue
        if breaker not in ("", "on", "off"):
            raise ConfigError(f"STREAMPROC_{name.upper()}_BREAKER must be on or off")
        if burst and not burst.isdigit():
            raise ConfigError(f"STREAMPROC_{name.upper()}_BURST must be a whole number")
        limits[name] = LimitSettings(
            rate=parse_rate(rate) if rate else None,
            burst=int(burst or 1),
            quota=parse_quota(quota) if quota else None,
            breaker=BreakerSettings(enabled=breaker != "off"),
        )
    return limits


def _variable(environ: Mapping[str, str], name: str, suffix: str) -> str:
    return environ.get(f"STREAMPROC_{name.upper()}_{suffix}", "").strip().lower()
