"""The retry policy of every redis-py client the engine makes: redis-py's, but a refused
password is final.

redis-py raises :class:`AuthenticationError` as a kind of ``ConnectionError``, so a policy
that retries connection errors retried it with backoff, and did so twice over (a connect
retries inside a command's retry): a missing password took 10 s to be reported.  No retry
makes Redis accept a password it refused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio.retry import Retry
from redis.exceptions import AuthenticationError

T = TypeVar("T")


class RetryButRefusals(Retry):
    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        def retryable(error: Exception) -> bool:
            if isinstance(error, AuthenticationError):
                return False
            return is_retryable is None or is_retryable(error)

        return await super().call_with_retry(do, fail, retryable, with_failure_count)
