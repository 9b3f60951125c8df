"""Prometheus metrics: task counts and durations where tasks run, stream figures polled from
Redis, served by daemons (--metrics-port) and by the HTTP API."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Callable

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

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


async def test_the_poller_copies_stream_figures_into_gauges(
    redis_url: str, keyspace: Keyspace, client: Client
) -> None:
    await client.submit({"tasks": [{"id": "a", "agent": "echo"}]})  # no worker: it waits
    poller = StreamPoller(RedisSettings.from_url(redis_url), keyspace)
    try:
        await poller.poll_once()
    finally:
        await poller.redis.aclose()
    assert sample("streamproc_agent_stream", agent="echo", figure="length") >= 1
    for figure in ("lag", "pending", "consumers", "dead_letters"):  # no group yet: all zero
        assert (
            REGISTRY.get_sample_value(
                "streamproc_agent_stream", {"agent": "echo", "figure": figure}
            )
            == 0
        )


async def test_the_api_serves_metrics(client: Client) -> None:
    app = make_app(client, ApiSettings())
    async with TestClient(TestServer(app)) as http:
        reply = await http.get("/metrics")
        assert reply.status == 200
        assert "streamproc_tasks_total" in await reply.text()


async def test_a_worker_process_serves_metrics_on_its_port(
    resolver_only: Engine, client: Client, worker_processes: Callable[..., Daemon]
) -> None:
    port = free_port()
    worker_processes("echo", "--metrics-port", str(port))
    await client.wait(await client.submit({"tasks": [{"id": "a", "agent": "echo"}]}), 20)

    async def page() -> str:
        """The metrics page once the poller has filled the stream gauges too."""
        try:
            url = f"http://127.0.0.1:{port}/metrics"
            with await asyncio.to_thread(urllib.request.urlopen, url, timeout=2) as r:
                text = str(r.read().decode())
        except OSError:
            return ""
        return text if 'streamproc_agent_stream{agent="echo"' in text else ""

    text = await eventually(page)
    assert 'streamproc_tasks_total{agent="echo",outcome="ok"} 1.0' in text
    assert 'streamproc_agent_stream{agent="echo",figure="pending"}' in text


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
