"""Prometheus metrics: what a process runs and calls, and what Redis says about each agent.

Counters and histograms are updated where the work happens: a finished task, an applied batch
of completions, a workflow's end, a limiter decision, a provider call.  Stream figures
(length, lag, pending, consumers, dead letters, desired consumers) and the search cache's
counters live in Redis, which a scrape cannot await: ``poller.StreamPoller`` copies them into
:data:`POLLED`, which exports the last copy with the type each figure has.  They are the
fleet's, not a process's, so only the resolver polls them (``cli/daemons.py``): were every
process to export them, summing over processes would count them once per process.  This
module imports nothing of the engine, so any module may record into it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

TASKS = Counter("streamproc_tasks", "Task attempts finished by this process", ["agent", "outcome"])
TASK_SECONDS = Histogram(
    "streamproc_task_duration_seconds",
    "Time an agent took on one attempt",
    ["agent"],
    buckets=(0.001, 0.005, 0.02, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
WORKFLOWS = Counter(
    "streamproc_workflows",
    "Workflows ended (completed, failed, cancelled), counted by the process that ended them",
    ["outcome"],
)
COMPLETIONS = Counter(
    "streamproc_resolver_completions",
    "Completions the resolver applied, or ignored as duplicate or superseded (stale)",
    ["result"],
)
BATCH_SECONDS = Histogram(
    "streamproc_resolver_batch_duration_seconds",
    "Time one sp_resolve call took to apply a batch of completions (its count: batches)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
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

# Polled figures: (name, help) by the poller's name for them.
STREAM_FIGURES = {
    "length": ("streamproc_agent_stream_length", "Entries in the agent's task streams"),
    "lag": ("streamproc_agent_stream_lag", "Entries not yet delivered to the agent's group"),
    "pending": ("streamproc_agent_stream_pending", "Entries delivered but not acknowledged"),
    "consumers": ("streamproc_agent_stream_consumers", "Consumers in the agent's group"),
    "dead_letters": ("streamproc_agent_stream_dead_letters", "Entries in its dead streams"),
    "desired": (
        "streamproc_agent_stream_desired_consumers",
        "The autoscaler's fleet-wide consumer count (only while it runs)",
    ),
}
CACHE_COUNTERS = {
    "hit": ("streamproc_search_cache_hits", "Searches answered from the cache"),
    "miss": ("streamproc_search_cache_misses", "Searches the cache could not answer"),
    "upstream": ("streamproc_search_cache_upstream_searches", "Searches sent to the provider"),
}
Figures = Mapping[str, Mapping[str, float]]  # figure -> label value -> value


class Polled(Collector):
    """The last figures a poller copied from Redis: stream figures as gauges by agent, cache
    totals as counters by provider (Redis keeps the totals, so they only grow)."""

    def __init__(self) -> None:
        self.polled: tuple[Figures, Figures] | None = None  # streams, cache

    def update(self, streams: Figures, cache: Figures) -> None:
        self.polled = streams, cache

    def describe(self) -> Iterable[Metric]:
        return self._families({}, {})

    def collect(self) -> Iterable[Metric]:
        """Nothing in a process that does not poll: not even empty families."""
        return () if self.polled is None else self._families(*self.polled)

    @staticmethod
    def _families(streams: Figures, cache: Figures) -> Iterator[Metric]:
        for figure, (name, text) in STREAM_FIGURES.items():
            gauge = GaugeMetricFamily(name, text, labels=["agent"])
            for agent, value in streams.get(figure, {}).items():
                gauge.add_metric([agent], value)
            yield gauge
        for kind, (name, text) in CACHE_COUNTERS.items():
            counter = CounterMetricFamily(name, text, labels=["provider"])
            for provider, value in cache.get(kind, {}).items():
                counter.add_metric([provider], value)
            yield counter


POLLED = Polled()
REGISTRY.register(POLLED)


def task_finished(agent: str, outcome: str, seconds: float) -> None:
    count, duration = _task_series(agent, outcome)
    count.inc()
    duration.observe(seconds)


@functools.cache
def _task_series(agent: str, outcome: str) -> tuple[Counter, Histogram]:
    """The labelled children, looked up once: ``labels()`` costs more than the update, and
    a worker updates them for every task."""
    return TASKS.labels(agent, outcome), TASK_SECONDS.labels(agent)


def batch_applied(seconds: float, consumed: int, stale: int, completed: int, failed: int) -> None:
    """One ``sp_resolve`` call's reply: the completions it consumed (of them, ``stale`` were
    ignored), the workflows it ended."""
    BATCH_SECONDS.observe(seconds)
    COMPLETIONS.labels("applied").inc(consumed - stale)
    COMPLETIONS.labels("stale").inc(stale)
    workflows_ended("completed", completed)
    workflows_ended("failed", failed)


def workflows_ended(outcome: str, count: int = 1) -> None:
    if count:
        WORKFLOWS.labels(outcome).inc(count)


def limiter_decision(provider: str, verdict: str) -> None:
    LIMITER.labels(provider, verdict).inc()


def provider_call(provider: str, outcome: str) -> None:
    PROVIDER_CALLS.labels(provider, outcome).inc()
