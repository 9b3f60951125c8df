"""Typed calls of the shared-limits library (``lua/limits.lua``): the one place that lays out
their KEYS and ARGV.  Times are microseconds; ``now`` is the caller's clock, or "" for the
Redis server's."""

from __future__ import annotations

from typing import Any, NamedTuple, cast

from redis.asyncio import Redis

from streamproc.store.functions import LIMITS, Function, text
from streamproc.store.keys import Keyspace
from streamproc.store.state import Breaker, Health, Verdict

__all__ = ["AdmitRequest", "Admitted", "Breaker", "Health", "RecordRequest", "Verdict"]


class AdmitRequest(NamedTuple):
    now: str
    interval: int  # the rate's emission interval (0: no rate limit)
    tau: int  # burst tolerance
    max_wait: int  # the longest wait worth sleeping
    quota: int  # calls per period (0: none)
    period_left: int  # time left in the quota's period
    probe_ttl: int  # how long a half-open probe holds its token
    token: str  # this caller's probe token


class Admitted(NamedTuple):
    verdict: Verdict
    wait: int  # go/probe: sleep this long, then call; else the earliest the API takes calls


def _admitted(reply: list[Any]) -> Admitted:
    verdict, wait = reply
    return Admitted(cast(Verdict, text(verdict)), int(wait))


ADMIT = Function("sp_limits_admit", LIMITS, _admitted)


async def admit(
    redis: Redis, keyspace: Keyspace, provider: str, period: str, request: AdmitRequest
) -> Admitted:
    """Check ``provider``'s breaker, spent mark, quota of ``period`` and rate, and take what
    a call needs, atomically."""
    keys = keyspace.api_limits(provider, period)
    return await ADMIT(redis, [len(keys), *keys, *request])


class RecordRequest(NamedTuple):
    now: str
    outcome: Health
    token: str  # the probe's token ("": not a probe)
    failures: int  # consecutive failures that open the breaker
    ratio: float  # failure ratio that opens it
    min_calls: int  # calls needed before the ratio counts
    window: int  # the ratio's window
    cooldown: int
    hold: int  # the wait the API itself named (a 429's Retry-After), 0: none


RECORD = Function("sp_limits_record", LIMITS, lambda reply: cast(Breaker, text(reply)))


async def record(
    redis: Redis, keyspace: Keyspace, provider: str, request: RecordRequest
) -> Breaker:
    """Tell ``provider``'s breaker how a call went; its state after."""
    _, _, _, breaker, probe = keyspace.api_limits(provider, "none")
    return await RECORD(redis, [2, breaker, probe, *request])
