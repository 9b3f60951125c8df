"""Riding out a Redis outage: capped, jittered exponential backoff around one loop step.

Credentials Redis refuses in the middle of a run (a password changed under a running
daemon) are ridden out the same way, and said for what they are: the daemon keeps its work
and carries on once its credentials work again.  At start they end the daemon instead
(``preflight``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from redis.exceptions import AuthenticationError, BusyLoadingError, OutOfMemoryError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

log = logging.getLogger(__name__)
# Redis cannot serve a loop step now, and the step is safe to repeat: unreachable, still
# loading, or over maxmemory (noeviction refuses writes; they pass again once memory is
# freed or the limit raised, and every engine write is idempotent or atomic).
REDIS_DOWN = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    OutOfMemoryError,
    ConnectionError,
    TimeoutError,
)
P = ParamSpec("P")
R = TypeVar("R")


def _trouble(exc: BaseException | None) -> str:
    if isinstance(exc, AuthenticationError):
        return f"redis refused the credentials ({exc}); retrying with backoff until they work"
    return f"redis unavailable ({exc}); retrying with backoff"


def _log_outage(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    level = logging.WARNING if state.attempt_number == 1 else logging.DEBUG
    log.log(level, "%s", _trouble(exc), extra={"attempt": state.attempt_number})


async def until_redis_answers(
    fn: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs
) -> R:
    """Run ``fn``, retrying forever while Redis is down (cancel the caller to give up)."""
    try:
        return await fn(*args, **kwargs)  # the common case pays for no retry machinery
    except REDIS_DOWN as exc:
        log.warning("%s", _trouble(exc))
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(REDIS_DOWN),
        wait=wait_exponential_jitter(multiplier=0.05, max=5.0, jitter=0.05),
        before_sleep=_log_outage,
        reraise=True,
    )
    return await retrying(fn, *args, **kwargs)
