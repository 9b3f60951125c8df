"""The taskiq side of ``scripts/bench --peers`` (``bench_peers.py``): its worker runs
``taskiq worker peer_taskiq:broker --workers 1``, and the bench kicks ``step`` from its
producer.

One no-op task, ``step``, plays every task of a workflow.  As taskiq has no workflows, a step
kicks its successors itself (``NEXT``: the dag's t1 -> t2 -> t3 -> (t4, t5)) and a last step
records its end as an entry of ``BENCH_DONE_STREAM`` (the entry id is Redis's clock, as for
streamproc's ``completed`` event); with its start time in microseconds.
"""

from __future__ import annotations

import os
import time
from typing import Any

from redis.asyncio import Redis
from taskiq_redis import RedisStreamBroker

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
DONE = "bench-peer-done"  # bench_peer_drivers.DONE
NEXT = {"t1": ["t2"], "t2": ["t3"], "t3": ["t4", "t5"]}  # successors in a dag workflow

broker = RedisStreamBroker(URL, queue_name="bench-taskiq", xread_block=1000)
_redis: Redis | None = None


@broker.task
async def step(workflow: str, task: str, dag: bool, data: Any) -> None:
    """A no-op task: kick its successors, or record the workflow's end."""
    started = time.time_ns() // 1000
    successors = NEXT.get(task, []) if dag else []
    for successor in successors:
        await step.kiq(workflow, successor, dag, data)
    if not successors:
        global _redis
        _redis = _redis or Redis.from_url(URL)
        await _redis.xadd(DONE, {"wf": workflow, "task": task, "at_us": started})
