"""What stands between the search chain and one provider.

Once per visit to a provider, the shared limits (``streamproc.outbound.limiter``): the circuit
breaker, the spent mark, the quota and the rate, one Redis call.  A provider that is out is skipped
with an error saying when it comes back (:class:`CircuitOpen`, :class:`QuotaSpent`,
:class:`RateLimited`); a short rate wait is slept.  Afterwards the visit's outcome goes to the
breaker, a 429 that names its wait holds the provider (breaker open) for that wait, and a
quota error marks the provider spent, each for every process.

Around each HTTP attempt (retries included), the provider's adaptive concurrency limit
(``streamproc.outbound.concurrency``): 429s and timeouts shrink it, successes grow it.

A visit's retries ride on its one rate slot and quota unit: they are few, spaced by backoff,
and SerpAPI, for one, bills only the searches that succeed.
"""

from __future__ import annotations

import asyncio
import logging

from streamproc import metrics
from streamproc.errors import (
    CircuitOpen,
    MalformedReply,
    ProviderError,
    QuotaSpent,
    RateLimited,
    TimedOut,
    Unavailable,
)
from streamproc.outbound.concurrency import AdaptiveLimit, ConcurrencySettings
from streamproc.outbound.limiter import Admission, Health, SharedLimiter
from streamproc.outbound.providers.base import SearchProvider, SearchReply

log = logging.getLogger(__name__)


class Guard:
    """Shared limits (when there is a Redis ``limiter``) and in-process concurrency limits."""

    def __init__(
        self,
        limiter: SharedLimiter | None = None,
        concurrency: ConcurrencySettings | None = None,
        quota_rest: float = 3600.0,
    ) -> None:
        self.limiter = limiter
        self.concurrency = concurrency or ConcurrencySettings()
        self.quota_rest = quota_rest
        self.limits: dict[str, AdaptiveLimit] = {}

    async def admit(self, name: str) -> Admission:
        """Permission to visit ``name`` (after any short wait), or the skip error."""
        if self.limiter is None:
            return Admission(name, "go")
        admission = await self.limiter.admit(name)
        metrics.limiter_decision(name, admission.verdict)
        if not admission.admitted:
            raise skip_error(admission)
        if admission.wait > 0:
            await asyncio.sleep(admission.wait)
        return admission

    async def call(self, provider: SearchProvider, query: str, count: int) -> SearchReply:
        """One attempt, holding a slot of the provider's concurrency limit."""
        limit = self.limits.get(provider.name)
        if limit is None:
            limit = self.limits[provider.name] = AdaptiveLimit(self.concurrency)
        async with limit.slot() as slot:
            metrics.CONCURRENCY.labels(provider.name).set(limit.capacity)
            try:
                return await provider.search(query, count)
            except (RateLimited, TimedOut):
                slot.dropped()
                raise

    def spent_for(self, name: str) -> float:
        """How long a provider that says its allowance is spent, but not until when, rests:
        until its configured quota period ends, else ``quota_rest``."""
        left = self.limiter.period_left(name) if self.limiter else None
        return left or self.quota_rest

    async def settle(self, admission: Admission, error: ProviderError | None) -> None:
        """Report the visit's outcome to the breaker; share a spent allowance."""
        outcome = outcome_of(error)
        metrics.provider_call(admission.provider, outcome)
        if self.limiter is None:
            return
        if isinstance(error, QuotaSpent):
            rest = error.retry_after or self.spent_for(error.provider)
            await self.limiter.mark_spent(error.provider, rest, error.reason)
        hold = held_for(error)
        state = await self.limiter.record(admission, outcome, hold)
        if hold:
            log.warning(
                "search provider %s: circuit open for the %.1fs it asked (%s)",
                admission.provider,
                hold,
                error,
            )
        elif outcome == "fail" and state == "open":
            log.warning("search provider %s: circuit open (%s)", admission.provider, error)


def outcome_of(error: ProviderError | None) -> Health:
    """Only failures that say the provider is unwell count against its breaker."""
    if error is None:
        return "ok"
    if isinstance(error, Unavailable | MalformedReply):
        return "fail"
    return "neutral"


def held_for(error: ProviderError | None) -> float:
    """The wait a provider's own 429 named (Retry-After), 0 for anything else."""
    if isinstance(error, RateLimited) and error.retry_after:
        return error.retry_after
    return 0.0


def skip_error(admission: Admission) -> ProviderError:
    name, wait = admission.provider, admission.wait
    if admission.verdict == "open":
        return CircuitOpen(name, f"not asked (circuit open, next probe in {wait:.1f}s)", wait)
    if admission.verdict == "spent":
        return QuotaSpent(name, f"not asked (allowance spent, renews in {wait:.0f}s)", wait)
    return RateLimited(name, f"not asked (shared rate limit, next slot in {wait:.2f}s)", wait)
