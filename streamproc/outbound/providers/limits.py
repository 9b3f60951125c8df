"""What a provider's rate-limit headers say about how long to wait.

``Retry-After`` (RFC 9110) is seconds or an HTTP-date.  ``X-RateLimit-Reset`` is seconds to
wait or, on some APIs, an epoch time; Brave sends one value per window, comma-separated
(``1, 1419704``: per second, per month), with ``X-RateLimit-Remaining`` in the same order.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

# A reset above this is an epoch time (2001-09-09), not a delta: no window lasts 30 years.
EPOCH_FLOOR = 1_000_000_000


def numbers(value: str | None) -> list[float]:
    """``"1, 1419704"`` -> ``[1.0, 1419704.0]``; anything unreadable -> ``[]``."""
    if not value:
        return []
    try:
        return [float(part) for part in value.split(",")]
    except ValueError:
        return []


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait before the next request, or None when the headers do not say.

    ``headers`` has lower-case names; ``now`` (epoch seconds) is for tests.
    """
    now = time.time() if now is None else now
    value = headers.get("retry-after")
    if value:
        return _seconds_or_date(value.strip(), now)
    return window_reset(headers, now)


def window_reset(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds until every exhausted window (Remaining 0) has reset, or until the soonest
    window resets when none is marked exhausted."""
    resets = numbers(headers.get("x-ratelimit-reset"))
    if not resets:
        return None
    remaining = numbers(headers.get("x-ratelimit-remaining"))
    exhausted = [r for r, left in zip(resets, remaining, strict=False) if left <= 0]
    reset = max(exhausted) if exhausted else min(resets)
    if reset > EPOCH_FLOOR:
        reset -= now
    return max(0.0, reset)


def _seconds_or_date(value: str, now: float) -> float | None:
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)
