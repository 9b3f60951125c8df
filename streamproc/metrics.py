"""Prometheus metrics: what a process runs and calls, and what Redis says about each agent.

Counters and histograms are updated where the work happens: a finished task, a limiter
decision, a provider call.  Stream figures (length, lag, pending, consumers, dead letters,
desired consumers) and cache counters live in Redis, which a scrape cannot await, so
``poller.StreamPoller`` copies them into these gauges.  Daemons serve ``/metrics`` with
``--metrics-port``; the HTTP API serves it too.  This module imports nothing of the engine,
so any module may record into it.
"""

from __future__ import annotations

import functools

from prometheus_client import Counter, Gauge, Histogram

TASKS = Counter("streamproc_tasks", "Task attempts finished by this process", ["agent", "outcome"])
TASK_SECONDS = Histogram(
    "streamproc_task_duration_seconds",
    "Time an agent took on one attempt",
    ["agent"],
    buckets=(0.001, 0.005, 0.02, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
STREAM = Gauge(
    "streamproc_agent_stream",
    "Per agent over all shards: length, lag, pending, consumers, dead_letters, desired",
    ["agent", "figure"],
)
CACHE = Gauge(
    "streamproc_search_cache", "Search cache counters (hit, miss, upstream)", ["provider", "kind"]
)
LIMITER = Counter(
    "streamproc_limiter_decisions",
    "Shared-limit verdicts per provider visit (go, probe, rate, spent, open)",
    ["provider", "verdict"],
)
PROVIDER_CALLS = Counter(
    "streamproc_provider_calls",
    "Provider visits by outcome (ok, fail, neutral)",
    ["provider", "outcome"],
)
CONCURRENCY = Gauge(
    "streamproc_provider_concurrency_limit", "Adaptive in-flight limit per provider", ["provider"]
)


def task_finished(agent: str, outcome: str, seconds: float) -> None:
    count, duration = _task_series(agent, outcome)
    count.inc()
    duration.observe(seconds)


@functools.cache
def _task_series(agent: str, outcome: str) -> tuple[Counter, Histogram]:
    """The labelled children, looked up once: ``labels()`` costs more than the update, and
    a worker updates them for every task."""
    return TASKS.labels(agent, outcome), TASK_SECONDS.labels(agent)


def limiter_decision(provider: str, verdict: str) -> None:
    LIMITER.labels(provider, verdict).inc()


def provider_call(provider: str, outcome: str) -> None:
    PROVIDER_CALLS.labels(provider, outcome).inc()
