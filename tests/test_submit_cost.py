"""Security check W4: submitting the largest spec the default limits allow blocks Redis for
one short call, so every other client (health checks, workers, the API) keeps answering.

Redis runs one command at a time: the submit function writes every task's fields in one
call, and its time grows with tasks and edges.  The default limits are set so that this call
stays near 20 ms (``Limits`` in spec/model.py says how they were chosen).  Durations come from
SLOWLOG of the test's own redis-server; the bound asserted is twice the target, on the
quickest of a few submits, since a loaded machine runs everything slower and a burst of load
can stretch any one call.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from streamproc import Client, ClientSettings, Keyspace, Limits
from streamproc.testing.embedded import EmbeddedRedis

TARGET_US = 20_000
SLACK = 2
TRIES = 3


def largest_spec(limits: Limits) -> dict[str, Any]:
    """``max_tasks`` tasks, each needing up to the ``max_edges / max_tasks`` tasks before it:
    the issue's shape (10,000 tasks, 99,945 edges at the old limits)."""
    fan_in = limits.max_edges // limits.max_tasks
    tasks = [
        {
            "id": f"t{i}",
            "agent": "echo",
            "input": i,
            "needs": [f"t{j}" for j in range(max(0, i - fan_in), i)],
        }
        for i in range(limits.max_tasks)
    ]
    return {"tasks": tasks}


@pytest.fixture
def timed_redis() -> Iterator[EmbeddedRedis]:
    """A redis-server of the test's own that logs every command's duration."""
    with EmbeddedRedis(
        None, None, "--slowlog-log-slower-than", "0", "--slowlog-max-len", "1000"
    ) as server:
        yield server


async def test_the_largest_default_spec_is_submitted_in_one_call_of_at_most_about_20_ms(
    timed_redis: EmbeddedRedis, keyspace: Keyspace
) -> None:
    limits = Limits()
    spec = largest_spec(limits)
    edges = sum(len(task["needs"]) for task in spec["tasks"])
    assert edges > limits.max_edges * 0.99  # the largest the limits allow, near enough
    durations = []
    async with Client(timed_redis.url, ClientSettings(keyspace=keyspace)) as client:
        for attempt in range(TRIES):
            await client.redis.slowlog_reset()
            await client.create(spec, f"largest-{attempt}")
            log = await client.redis.slowlog_get(1000)
            assert (await client.get(f"largest-{attempt}")).status == "running"
            calls = [entry["duration"] for entry in log if entry["command"].startswith(b"FCALL")]
            assert len(calls) == 1, calls
            durations.append(max(entry["duration"] for entry in log))
    assert min(durations) < TARGET_US * SLACK, durations
