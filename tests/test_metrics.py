"""Prometheus metrics: task counts and durations where tasks run, workflows and batches where
the resolver applies them, stream and cache figures polled from Redis by the resolver, served
by daemons (--metrics-port) and by the HTTP API."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Callable

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from streamproc import Client, Keyspace, RedisSettings
from streamproc.http.app import make_app
from streamproc.http.auth import ApiSettings
from streamproc.ops.poller import StreamPoller
from streamproc.outbound.cache import SearchCache
from streamproc.outbound.providers import SearchSettings, close_session
from streamproc.testing.embedded import free_port
from streamproc.testing.fakes import Fakes
from tests.conftest import Engine, eventually
from tests.daemon import Daemon

OUTCOMES = ("completed", "failed", "cancelled")
TWO = {"tasks": [{"id": "a", "agent": "echo"}, {"id": "b", "agent": "poison", "retries": 0}]}


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_finished_tasks_are_counted_by_outcome_and_timed(
    engine: Engine, client: Client
) -> None:
    ok_before = sample("streamproc_tasks_total", agent="echo", outcome="ok")
    failed_before = sample("streamproc_tasks_total", agent="poison", outcome="error")
    timed_before = sample("streamproc_task_duration_seconds_count", agent="echo")
    await client.wait(await client.submit(TWO), timeout=20)
    assert sample("streamproc_tasks_total", agent="echo", outcome="ok") == ok_before + 1
    assert sample("streamproc_tasks_total", agent="poison", outcome="error") == failed_before + 1
    assert sample("streamproc_task_duration_seconds_count", agent="echo") == timed_before + 1


async def polled(redis_url: str, keyspace: Keyspace) -> None:
    poller = StreamPoller(RedisSettings.from_url(redis_url), keyspace)
    try:
        await poller.poll_once()
    finally:
        await poller.redis.aclose()


def family_type(name: str) -> str | None:
    return next((m.type for m in REGISTRY.collect() if m.name == name), None)


async def test_each_stream_figure_is_a_gauge_of_its_own_labelled_by_agent(
    redis_url: str, keyspace: Keyspace, client: Client
) -> None:
    await client.submit({"tasks": [{"id": "a", "agent": "echo"}]})  # no worker: it waits
    await polled(redis_url, keyspace)
    assert sample("streamproc_agent_stream_length", agent="echo") >= 1
    for figure in ("lag", "pending", "consumers", "dead_letters"):
        name = f"streamproc_agent_stream_{figure}"
        assert REGISTRY.get_sample_value(name, {"agent": "echo"}) is not None, name
        assert family_type(name) == "gauge"
    assert family_type("streamproc_agent_stream") is None


async def test_search_cache_figures_are_counters_polled_from_redis_totals(
    redis_url: str, keyspace: Keyspace
) -> None:
    async with Fakes(retry_after=0, stall=5.0) as fakes:
        env = {k: v for k, v in fakes.search_env().items() if "SERPAPI" in k}
        redis = RedisSettings.from_url(redis_url).connect()
        try:
            cache = SearchCache.from_settings(redis, keyspace, SearchSettings.from_env(env))
            for _ in range(3):
                await cache.search(f"counted {keyspace.namespace}")
        finally:
            await redis.aclose()
            await close_session()
    await polled(redis_url, keyspace)
    for kind, value in (("hits", 2), ("misses", 1), ("upstream_searches", 1)):
        name = f"streamproc_search_cache_{kind}"
        assert family_type(name) == "counter", name
        assert sample(f"{name}_total", provider="serpapi") == value, name
    assert family_type("streamproc_search_cache") is None


async def test_the_api_serves_metrics(client: Client) -> None:
    app = make_app(client, ApiSettings())
    async with TestClient(TestServer(app)) as http:
        reply = await http.get("/metrics")
        assert reply.status == 200
        assert "streamproc_tasks_total" in await reply.text()


async def metrics_page(port: int, having: str) -> str:
    """For ``eventually``: the process's metrics page once it shows ``having``."""
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        with await asyncio.to_thread(urllib.request.urlopen, url, timeout=2) as r:
            text = str(r.read().decode())
    except OSError:
        return ""
    return text if having in text else ""


async def test_workers_export_what_they_run_and_only_the_resolver_what_redis_holds(
    redis_url: str,
    keyspace: Keyspace,
    resolver_only: Engine,
    client: Client,
    worker_processes: Callable[..., Daemon],
) -> None:
    """Stream and cache figures are the fleet's: polled by every process, summing them
    would count them once per process."""
    worker_port, resolver_port = free_port(), free_port()
    worker_processes("echo", "--metrics-port", str(worker_port))
    resolver = Daemon(
        redis_url, keyspace.namespace, "resolver", "--metrics-port", str(resolver_port)
    )
    try:
        await client.wait(await client.submit({"tasks": [{"id": "a", "agent": "echo"}]}), 20)
        ran = 'streamproc_tasks_total{agent="echo",outcome="ok"} 1.0'
        polled = 'streamproc_agent_stream_pending{agent="echo"}'
        await eventually(lambda: metrics_page(resolver_port, polled))
        worker_page = await eventually(lambda: metrics_page(worker_port, ran))
    finally:
        resolver.kill()
    assert "streamproc_agent_stream" not in worker_page
    assert "streamproc_search_cache" not in worker_page


async def test_ended_workflows_are_counted_by_outcome(engine: Engine, client: Client) -> None:
    before = {o: sample("streamproc_workflows_total", outcome=o) for o in OUTCOMES}
    await client.wait(await client.submit({"tasks": [{"id": "a", "agent": "echo"}]}), 20)
    await client.wait(await client.submit(TWO), 20)
    async with Client(client.redis_settings, client.settings) as plain:  # "manual": unserved
        waiting = await plain.submit({"tasks": [{"id": "a", "agent": "manual"}]})
    assert await client.cancel(waiting)

    async def counted() -> dict[str, float]:
        """Each count, once the resolver has counted the ends (just after they were written)."""
        now = {o: sample("streamproc_workflows_total", outcome=o) - before[o] for o in OUTCOMES}
        return now if all(now.values()) else {}

    assert await eventually(counted) == dict.fromkeys(OUTCOMES, 1)


async def test_the_resolver_counts_its_batches_and_the_stale_completions_it_ignored(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    batches = sample("streamproc_resolver_batch_duration_seconds_count")
    applied = sample("streamproc_resolver_completions_total", result="applied")
    stale = sample("streamproc_resolver_completions_total", result="stale")
    async with Client(client.redis_settings, client.settings) as plain:  # "manual": unserved
        workflow_id = await plain.submit({"tasks": [{"id": "a", "agent": "manual"}]})
    for _ in range(2):  # the same completion twice: the second is a duplicate
        await redis.xadd(keyspace.done(keyspace.shard_of(workflow_id)), completion(workflow_id))
    await client.wait(workflow_id, 20)
    await eventually(lambda: settled("stale", stale + 1))
    assert sample("streamproc_resolver_completions_total", result="applied") == applied + 1
    assert sample("streamproc_resolver_batch_duration_seconds_count") >= batches + 1
    assert family_type("streamproc_resolver_batch_duration_seconds") == "histogram"


async def settled(result: str, count: float) -> bool:
    return sample("streamproc_resolver_completions_total", result=result) >= count


def completion(workflow_id: str) -> dict[str, str | int]:
    """What a worker of agent ``manual`` (which none serves) writes for task ``a``."""
    return {
        "v": "1",
        "kind": "ok",
        "wf": workflow_id,
        "task": "a",
        "agent": "manual",
        "att": 1,
        "out": "1",
        "t0": 1,
        "t1": 2,
        "by": "test",
    }


async def test_provider_calls_and_limiter_decisions_are_counted(
    redis_url: str, keyspace: Keyspace
) -> None:
    async with Fakes(retry_after=0, stall=5.0) as fakes:
        env = {k: v for k, v in fakes.search_env().items() if "SERPAPI" in k}
        settings = SearchSettings.from_env(env)
        redis = RedisSettings.from_url(redis_url).connect()
        try:
            cache = SearchCache.from_settings(redis, keyspace, settings)
            before = sample("streamproc_limiter_decisions_total", provider="serpapi", verdict="go")
            calls = sample("streamproc_provider_calls_total", provider="serpapi", outcome="ok")
            await cache.search(f"metrics {keyspace.namespace}")
        finally:
            await redis.aclose()
    assert (
        sample("streamproc_limiter_decisions_total", provider="serpapi", verdict="go") == before + 1
    )
    assert sample("streamproc_provider_calls_total", provider="serpapi", outcome="ok") == calls + 1
    assert sample("streamproc_provider_concurrency_limit", provider="serpapi") >= 1
    await close_session()
