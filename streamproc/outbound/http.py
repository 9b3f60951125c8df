"""HTTP for every external API: one shared aiohttp session, one request helper, one retry policy.

A request either returns an :class:`Answer` (any status: the provider module decides what it
means) or raises :class:`Unavailable` for a timeout or a connection failure.  Messages name
the exception type only, never the URL, because some providers take the key in the query, and
the error keeps no link to aiohttp's, whose request info holds the URL and the headers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import aiohttp
import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from streamproc.errors import RateLimited, TimedOut, Unavailable

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

_session: aiohttp.ClientSession | None = None
_session_loop: asyncio.AbstractEventLoop | None = None


def session() -> aiohttp.ClientSession:
    """The process's session, made on first use.  A session belongs to the loop that made it,
    so a new loop (``asyncio.run`` called twice, as a CLI or a sync wrapper may) gets its own."""
    global _session, _session_loop
    loop = asyncio.get_running_loop()
    if _session is None or _session.closed or _session_loop is not loop:
        _session = aiohttp.ClientSession(headers={"User-Agent": "streamproc"})
        _session_loop = loop
    return _session


async def close_session() -> None:
    """Close the shared session; call once at shutdown (the next request opens a new one)."""
    global _session
    if _session is not None:
        await _session.close()
        _session = None


@dataclass(frozen=True)
class Answer:
    """A whole HTTP reply; header names are lower-cased."""

    status: int
    headers: Mapping[str, str]
    body: bytes


async def request(
    provider: str,
    method: str,
    url: str,
    *,
    timeout: float,
    params: Mapping[str, str | int] | None = None,
    headers: Mapping[str, str] | None = None,
    payload: object = None,
) -> Answer:
    """One exchange within ``timeout`` seconds in total, connecting and reading included."""
    return await exchange(
        provider,
        method,
        url,
        whole,
        timeout=timeout,
        params=params,
        headers=headers,
        payload=payload,
    )


async def whole(reply: aiohttp.ClientResponse) -> Answer:
    """The reply read whole."""
    body = await reply.read()
    return Answer(reply.status, {k.lower(): v for k, v in reply.headers.items()}, body)


async def exchange(
    provider: str,
    method: str,
    url: str,
    read: Callable[[aiohttp.ClientResponse], Awaitable[R]],
    *,
    timeout: float,
    params: Mapping[str, str | int] | None = None,
    headers: Mapping[str, str] | None = None,
    payload: object = None,
) -> R:
    """What ``read`` makes of the reply as it arrives (a streamed one, say), all within
    ``timeout`` seconds; a timeout or a connection failure, while connecting or reading, is
    :class:`Unavailable`."""
    data = None if payload is None else orjson.dumps(payload)
    sent = {**(headers or {}), **({"Content-Type": "application/json"} if data else {})}
    try:
        async with session().request(
            method,
            url,
            params=params,
            headers=sent,
            data=data,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as reply:
            return await read(reply)
    except TimeoutError:
        failure: Unavailable = TimedOut(provider, f"no reply within {timeout:g}s")
    except aiohttp.ClientError as exc:
        failure = Unavailable(provider, f"connection failed ({type(exc).__name__})")
    # Raised out here: raised in the handler, it would keep aiohttp's exception (and so the
    # request's URL and headers) as its context, which ``from None`` only hides.
    raise failure


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one provider before moving on.  Only :class:`Unavailable` is retried
    with backoff; a :class:`RateLimited` whose wait is at most ``rate_limit_wait`` seconds is
    waited out and retried once; everything stops at ``deadline`` seconds."""

    attempts: int = 3
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    jitter: float = 0.5
    rate_limit_wait: float = 2.0
    deadline: float = 30.0


class _Decision:
    """Per call: whether the last failure is worth another try, and how long to wait first."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.waited_for_rate_limit = False
        self.backoff = wait_exponential_jitter(
            multiplier=policy.backoff_initial, max=policy.backoff_max, jitter=policy.jitter
        )

    def retry(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited):
            short = exc.retry_after is not None and exc.retry_after <= self.policy.rate_limit_wait
            if short and not self.waited_for_rate_limit:
                self.waited_for_rate_limit = True
                return True
            return False
        return isinstance(exc, Unavailable)

    def wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            return exc.retry_after
        return float(self.backoff(state))

    @staticmethod
    def log(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.info("%s; attempt %d in %.2fs", exc, state.attempt_number + 1, wait)


async def with_retries(
    policy: RetryPolicy, call: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs
) -> R:
    """``await call(*args, **kwargs)`` under ``policy``; the last error is raised as is."""
    decision = _Decision(policy)
    retrying = AsyncRetrying(
        retry=decision.retry,
        wait=decision.wait,
        stop=stop_after_attempt(policy.attempts) | stop_before_delay(policy.deadline),
        before_sleep=decision.log,
        reraise=True,
    )
    return await retrying(call, *args, **kwargs)
