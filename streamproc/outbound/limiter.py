"""Limits on an external API that every worker on every host respects, kept in Redis.

Before calling a provider a process asks :meth:`SharedLimiter.admit`, one Redis Function call
(``lua/limits.lua``, ``sp_limits_admit``) that checks, in order, and takes atomically:

1. the circuit breaker.  *Closed*: calls go.  *Open* (after ``failures`` consecutive failures,
   or a failure ratio of at least ``ratio`` over ``min_calls`` calls in ``window``): nobody
   calls until ``cooldown`` has passed.  *Half-open* (cool-down over): one caller gets the
   probe (SET NX with a token, expiring after ``probe_timeout`` in case its process dies); the
   others wait.  The probe's success closes the breaker, its failure re-opens it;
2. the spent mark, set when the API said its allowance is used up, expiring when it renews;
3. the quota: calls counted per UTC day or month, in a key that expires at the period's end;
4. the rate, by GCRA (generic cell rate algorithm).  With emission interval ``T = 1 / rate``
   and burst tolerance ``tau = (burst - 1) * T``, the stored TAT (theoretical arrival time)
   is when the next call is due at exactly the rate; a call at ``t`` may go at
   ``max(t, TAT - tau)`` and going moves TAT to ``max(TAT, t) + T``.  One number per API,
   no timers, and the slot is booked in the same call, so a short wait is simply slept.

Failures that count against the breaker are 5xx, timeouts and malformed replies; they are
reported with :meth:`record`.  A 429 is no failure, but when it names its wait (Retry-After)
:meth:`record` opens the breaker for exactly that wait: the API asked *us*, every process,
to stop, so no process calls it again before then, and one probe goes first afterwards (a
restarted worker, knowing nothing, still finds the breaker open).  A caller with no clock of
its own uses the Redis server's (TIME), which all hosts share.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from redis.asyncio import Redis

from streamproc.outbound.limit_settings import LimitSettings
from streamproc.store import limits as redis_limits
from streamproc.store.keys import Keyspace
from streamproc.store.limits import Health, Verdict

__all__ = ["US", "Admission", "Health", "SharedLimiter", "Verdict"]
US = 1_000_000


@dataclass(frozen=True)
class Admission:
    """``verdict`` go/probe: sleep ``wait`` seconds, then call.  Otherwise skip this API;
    ``wait`` is the earliest it may take calls again."""

    provider: str
    verdict: Verdict
    wait: float = 0.0
    token: str = ""

    @property
    def admitted(self) -> bool:
        return self.verdict in ("go", "probe")


class SharedLimiter:
    """``admit`` before a call, ``record`` its outcome, ``mark_spent`` on a quota error."""

    def __init__(
        self,
        redis: Redis,
        keyspace: Keyspace,
        limits: Mapping[str, LimitSettings] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.redis = redis
        self.keyspace = keyspace
        self.limits = dict(limits or {})
        self.clock = clock

    def settings(self, provider: str) -> LimitSettings:
        return self.limits.get(provider) or LimitSettings()

    async def admit(self, provider: str) -> Admission:
        s = self.settings(provider)
        period, left = s.quota.window(self._time()) if s.quota else ("none", 0.0)
        interval = US / s.rate if s.rate else 0.0
        token = secrets.token_hex(8)
        request = redis_limits.AdmitRequest(
            self._now(),
            round(interval),
            round((s.burst - 1) * interval),
            round(s.max_wait * US),
            s.quota.calls if s.quota else 0,
            round(left * US),
            round(s.breaker.probe_timeout * US),
            token,
        )
        verdict, wait = await redis_limits.admit(
            self.redis, self.keyspace, provider, period, request
        )
        return Admission(provider, verdict, wait / US, token)

    async def record(self, admission: Admission, outcome: Health, hold: float = 0.0) -> str:
        """Tell the breaker how a call went; returns its state after (closed/open/half-open).
        ``hold``: seconds the API said to wait (a 429's Retry-After), which opens the breaker
        until then.  With the breaker off, nothing is shared, a hold included."""
        b = self.settings(admission.provider).breaker
        if not b.enabled:
            return "closed"
        request = redis_limits.RecordRequest(
            self._now(),
            outcome,
            admission.token if admission.verdict == "probe" else "",
            b.failures,
            b.ratio,
            b.min_calls,
            round(b.window * US),
            round(b.cooldown * US),
            round(hold * US),
        )
        return await redis_limits.record(self.redis, self.keyspace, admission.provider, request)

    async def mark_spent(self, provider: str, seconds: float, reason: str) -> None:
        """Every process skips ``provider`` for ``seconds``: its allowance is used up."""
        spent = self.keyspace.api_limits(provider, "none")[2]
        await self.redis.set(spent, reason, px=max(1, round(seconds * 1000)))

    def period_left(self, provider: str) -> float | None:
        """Seconds until the provider's configured quota renews, if it has one."""
        quota = self.settings(provider).quota
        return quota.window(self._time())[1] if quota else None

    def _time(self) -> float:
        return self.clock() if self.clock else time.time()

    def _now(self) -> str:
        return "" if self.clock is None else str(round(self.clock() * US))
