"""Rows G1-G5: the search providers misbehave under workflows that search.

Each test runs the prototype's ``execution`` agent through the engine (worker processes, or
the in-process worker where one process is enough) against local fake servers that speak the
providers' wire formats, with the shared limits in the test's real Redis.  Provider A is
SerpAPI, the fallback B is Brave.  The fakes count what reaches them; the oracle checks the
workflows' retained streams afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import pytest
from aiohttp import web
from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace
from streamproc.store.state import WorkflowState
from streamproc.testing.embedded import EmbeddedRedis
from streamproc.testing.fakes import Behaviour, Fakes, FakeSerpApi
from tests.conftest import Engine, eventually
from tests.daemon import Daemon
from tests.faults import oracle
from tests.faults.search import (
    TimedLimitedSerpApi,
    TimedSerpApi,
    busiest_second,
    fakes_with,
    provider_env,
    searches,
)
from tests.faults.workload import all_ready, worker

RETRY_AFTER = 3.0  # what A's 429s ask; above the chain's 2 s in-visit wait, so never slept
Providers = Callable[..., None]


class TrickleSerpApi(FakeSerpApi):
    """Slow loris: says 200 at once, then sends its body one byte a second, forever."""

    async def _handle(self, request: web.Request) -> web.StreamResponse:  # type: ignore[override]
        self.requests += 1
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 1 << 20
        await response.prepare(request)
        with contextlib.suppress(ConnectionResetError):
            while True:
                await response.write(b" ")
                await asyncio.sleep(1)
        return response


@pytest.fixture
def use_providers(monkeypatch: pytest.MonkeyPatch) -> Providers:
    """``use_providers(fakes, "serpapi", "brave", ...)``: :func:`provider_env` in this
    process's environment, which the in-process worker's toolkit and the worker processes
    started after it read."""

    def use(fakes: Fakes, *names: str, **settings: str) -> None:
        for variable, value in provider_env(fakes, *names, **settings).items():
            monkeypatch.setenv(variable, value)

    return use


def workers(redis_url: str, keyspace: Keyspace, count: int) -> list[Daemon]:
    return [
        worker(redis_url, keyspace.namespace, "execution", "--concurrency", "16")
        for _ in range(count)
    ]


async def completed_by(
    client: Client, redis: Redis, ids: list[str], timeout: float = 20.0
) -> list[WorkflowState]:
    """Every workflow completed, checked by the oracle (I1-I3, I5); their states."""
    verdict = await oracle.check(client, redis, ids, timeout=timeout, agents=("execution",))
    verdict.assert_invariants()
    assert verdict.statuses == {"completed": len(ids)}, verdict.statuses
    return [verdict.states[i] for i in ids]


async def breaker_open_for(redis: Redis, keyspace: Keyspace, provider: str) -> float:
    """Seconds the provider's shared breaker stays open (0 when closed), on Redis's clock."""
    open_until = await redis.hget(keyspace.api_limits(provider, "none")[3], "open_until")
    seconds, micros = await redis.time()
    return max(0.0, (int(open_until or 0) - seconds * 1_000_000 - micros) / 1e6)


def seconds_taken(states: list[WorkflowState]) -> list[float]:
    return [((t.ended_ms or 0) - (t.began_ms or 0)) / 1000 for s in states for t in s.tasks]


async def test_g1_a_429_storm_holds_a_everywhere_for_its_retry_after_and_b_serves_every_search(
    resolver_only: Engine,
    redis_url: str,
    keyspace: Keyspace,
    client: Client,
    redis: Redis,
    use_providers: Providers,
) -> None:
    """A answers every search with 429 + Retry-After.  The first 429 a worker gets opens A's
    shared breaker for exactly that wait, so no worker process asks A again before it ends,
    and then only one probe goes; B answers every search meanwhile.  Throttling is no task
    failure: every task completes on its first attempt, spending none of its retries."""
    storm = TimedSerpApi(retry_after=RETRY_AFTER)
    storm.behaviour = Behaviour.RATE_LIMITED
    async with fakes_with(storm) as fakes:
        use_providers(fakes, "serpapi", "brave")
        pool = workers(redis_url, keyspace, 2)
        try:
            await eventually(lambda: all_ready(pool))
            first = await client.submit_many(searches(4, "first wave"))
            await oracle.wait_ended(client, first, timeout=20)
            held = await breaker_open_for(redis, keyspace, "serpapi")
            assert 0 < held <= RETRY_AFTER, "a 429's Retry-After opens A's breaker"
            opened = time.monotonic()
            second = await client.submit_many(searches(16, "during the hold"))
            await oracle.wait_ended(client, second, timeout=20)
            calls = storm.since(opened)
            assert all(t > opened + held - 0.1 for t in calls), "none before the wait ended"
            assert len(calls) <= 1 + (time.monotonic() - opened) / RETRY_AFTER

            await eventually(lambda: _hold_over(redis, keyspace), timeout=2 * RETRY_AFTER)
            after = time.monotonic()
            third = await client.submit_many(searches(8, "after the hold"))
            await oracle.wait_ended(client, third, timeout=20)
            probes = len(storm.since(after))
            assert 1 <= probes <= 1 + (time.monotonic() - after) / RETRY_AFTER, probes
        finally:
            for daemon in pool:
                daemon.kill()
        states = await completed_by(client, redis, first + second + third)
    assert {s.results["search"]["provider"] for s in states} == {"brave"}
    assert fakes.brave.requests == 28
    tasks = [t for s in states for t in s.tasks]
    assert all((t.attempt, t.failures, t.lost) == (1, 0, 0) for t in tasks), "no retry spent"
    assert all("Traceback" not in d.log_text() for d in pool)


async def _hold_over(redis: Redis, keyspace: Keyspace) -> bool:
    return await breaker_open_for(redis, keyspace, "serpapi") == 0


def failing_a(fault: str) -> FakeSerpApi:
    if fault == "slow-loris":
        return TrickleSerpApi()
    fake = FakeSerpApi(stall=30.0)
    fake.behaviour = Behaviour.UNAVAILABLE if fault == "503" else Behaviour.SLOW
    return fake


@pytest.mark.parametrize("fault", ["503", "no-reply", "slow-loris"])
async def test_g2_a_failing_or_hanging_provider_is_cut_off_by_timeouts_then_by_its_breaker(
    fault: str,
    redis_url: str,
    keyspace: Keyspace,
    client: Client,
    redis: Redis,
    use_providers: Providers,
) -> None:
    """A answers 503, or accepts and never answers, or trickles its reply at 1 byte/s.  Each
    HTTP request ends within STREAMPROC_SEARCH_TIMEOUT (the total, not a read timeout that a
    trickle keeps resetting), a visit after its three attempts, and B answers; the five
    failed visits open A's breaker, after which A is not asked at all.  No task comes near
    its own timeout, so no worker slot is held beyond it."""
    async with fakes_with(failing_a(fault)) as fakes:
        use_providers(fakes, "serpapi", "brave", STREAMPROC_SEARCH_TIMEOUT="0.5")
        engine = Engine(redis_url, keyspace)
        engine.start_resolver()
        engine.start_worker(("execution",))
        try:
            first = await client.submit_many(searches(5, "first", timeout=10))
            states = await completed_by(client, redis, first)
            visits = fakes.serpapi.requests
            assert visits == 5 * 3, "three attempts per visit, then B"
            assert await breaker_open_for(redis, keyspace, "serpapi") > 0
            second = await client.submit_many(searches(10, "second", timeout=10))
            states += await completed_by(client, redis, second)
        finally:
            await engine.stop()
    assert fakes.serpapi.requests == visits, "an open breaker: A not asked"
    assert {s.results["search"]["provider"] for s in states} == {"brave"}
    durations = seconds_taken(states)
    # Three attempts of at most 0.5 s with backoff between them: far below the 10 s timeout.
    assert max(durations[:5]) < 6, durations
    assert all(t.attempt == 1 and not t.error for s in states for t in s.tasks)


async def test_g3_all_providers_down_fails_the_workflow_with_the_reason_in_bounded_time(
    redis_url: str,
    keyspace: Keyspace,
    client: Client,
    redis: Redis,
    use_providers: Providers,
) -> None:
    """A and B both answer 503.  Each attempt of the task tries both (three requests each),
    the task's retries run out, and the workflow fails naming every provider's failure:
    no wait on a provider that never said when it would be back, no endless retry."""
    async with Fakes(retry_after=0) as fakes:
        fakes.serpapi.behaviour = fakes.brave.behaviour = Behaviour.UNAVAILABLE
        use_providers(fakes, "serpapi", "brave")
        engine = Engine(redis_url, keyspace)
        engine.start_resolver()
        engine.start_worker(("execution",))
        try:
            began = time.monotonic()
            (workflow_id,) = await client.submit_many(searches(1, "down", retries=1))
            verdict = await oracle.check(client, redis, [workflow_id], agents=("execution",))
            took = time.monotonic() - began
        finally:
            await engine.stop()
    verdict.assert_invariants()
    state = verdict.states[workflow_id]
    assert state.status == "failed", state
    assert state.reason.startswith("task search dead-lettered"), state.reason
    assert "all search providers unavailable (serpapi: unavailable, HTTP 503" in state.reason, (
        state.reason
    )
    assert "; brave: unavailable, HTTP 503" in state.reason, state.reason
    assert state.tasks[0].attempt == 2, "retries=1: two attempts, no more"
    assert (fakes.serpapi.requests, fakes.brave.requests) == (2 * 3, 2 * 3)
    # Two attempts of two visits, each three requests with at most 2.5 s of backoff: 10 s.
    assert took < 15, took


async def test_g4_four_workers_at_twice_the_rate_keep_a_within_its_shared_limit(
    resolver_only: Engine,
    redis_url: str,
    keyspace: Keyspace,
    client: Client,
    redis: Redis,
    use_providers: Providers,
) -> None:
    """Four worker processes get searches at twice A's configured rate for three seconds.
    The shared GCRA limit lets at most RATE a second through to A, all processes together
    (what it cannot take within a second goes to B), so A never has to refuse one: its
    busiest second stays within the rate plus the one-call burst, give or take jitter."""
    rate, burst, epsilon = 20, 1, 0.25
    limited = TimedLimitedSerpApi(rate=rate, base_latency=0.02, per_in_flight=0.0)
    async with fakes_with(limited) as fakes:
        use_providers(fakes, "serpapi", "brave", STREAMPROC_SERPAPI_RATE=str(rate))
        pool = workers(redis_url, keyspace, 4)
        try:
            await eventually(lambda: all_ready(pool))
            ids = []
            for tick in range(30):  # 2 x rate a second, in tenths of a second, for 3 s
                ids += await client.submit_many(searches(2 * rate // 10, f"tick {tick}"))
                await asyncio.sleep(0.1)
            states = await completed_by(client, redis, ids)
        finally:
            for daemon in pool:
                daemon.kill()
    served = {s.results["search"]["provider"] for s in states}
    assert served == {"serpapi", "brave"}, "A took its share, B the overflow"
    busiest = busiest_second(limited.arrivals)
    assert busiest <= rate * (1 + epsilon) + burst, (busiest, rate)
    assert limited.rejected == 0, "A never had to refuse a call"
    assert all(t.attempt == 1 for s in states for t in s.tasks)


async def test_g5_restarting_workers_then_redis_mid_storm_brings_no_burst_on_a(
    keyspace: Keyspace, use_providers: Providers
) -> None:
    """A is in a 429 storm and has a shared rate of 5/s.  The worker processes are SIGKILLed
    while searches keep coming, and new ones start on a backlog; then Redis is shut down
    under load and restarted on its data.  The breaker and the rate live in Redis, so the new
    processes resume them instead of each starting afresh: after either restart no search
    reaches A before its Retry-After has passed, then one probe.  Last, the limits' keys are
    deleted, as if Redis had lost them: the breaker starts closed and the rate empty, and the
    rate alone keeps A's busiest second within rate plus burst.  Resumed or reset, no herd."""
    rate, burst = 5, 1
    storm = TimedSerpApi(retry_after=RETRY_AFTER)
    storm.behaviour = Behaviour.RATE_LIMITED
    with EmbeddedRedis() as server:
        engine = Engine(server.url, keyspace)
        engine.start_resolver()
        async with (
            fakes_with(storm) as fakes,
            Client(server.url, ClientSettings(keyspace=keyspace)) as client,
            Redis.from_url(server.url) as redis,
        ):
            use_providers(fakes, "serpapi", "brave", STREAMPROC_SERPAPI_RATE=str(rate))
            pool = workers(server.url, keyspace, 2)
            try:
                ids = await client.submit_many(searches(6, "before"))
                await oracle.wait_ended(client, ids, timeout=20)
                assert await breaker_open_for(redis, keyspace, "serpapi") > 0

                for daemon in pool:
                    daemon.kill()
                ids += await client.submit_many(searches(20, "backlog"))
                restarted = time.monotonic()
                pool = workers(server.url, keyspace, 2)
                ids += await client.submit_many(searches(10, "after workers"))
                await oracle.wait_ended(client, ids, timeout=20)

                ids += await client.submit_many(searches(20, "across redis"))
                await redis.shutdown()  # SHUTDOWN: the AOF is flushed, clients refused
                await asyncio.to_thread(server.process.wait, 10)  # type: ignore[union-attr]
                server.start()
                ids += await client.submit_many(searches(10, "after redis"))
                await oracle.wait_ended(client, ids, timeout=30)
                resumed = storm.since(restarted)
                resumed_for = time.monotonic() - restarted

                await redis.delete(*keyspace.api_limits("serpapi", "none"))
                lost = time.monotonic()
                ids += await client.submit_many(searches(20, "limits lost"))
                states = await completed_by(client, redis, ids)
            finally:
                for daemon in pool:
                    daemon.kill()
                await engine.stop()
    assert len(resumed) <= 1 + resumed_for / RETRY_AFTER, (resumed, resumed_for)
    assert storm.since(lost), "reset: the breaker closed, A asked again"
    assert busiest_second(storm.since(lost)) <= rate + burst, storm.since(lost)
    assert {s.results["search"]["provider"] for s in states} == {"brave"}
