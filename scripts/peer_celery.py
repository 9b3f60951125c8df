"""The Celery side of ``scripts/bench --peers`` (``bench_peers.py``): its worker runs
``celery -A peer_celery worker --pool threads`` (one process), and the bench calls ``step``
from its producer.

As ``peer_taskiq``: one no-op task plays every task of a workflow, kicks its successors
itself, and a last step records its end and its start time (µs) in ``BENCH_DONE_STREAM``.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery
from redis import Redis

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
DONE = "bench-peer-done"  # bench_peer_drivers.DONE
NEXT = {"t1": ["t2"], "t2": ["t3"], "t3": ["t4", "t5"]}  # successors in a dag workflow

app = Celery("bench", broker=URL)
app.conf.update(
    task_ignore_result=True,
    task_default_queue="bench-celery",
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
_redis = Redis.from_url(URL)


@app.task
def step(workflow: str, task: str, dag: bool, data: Any) -> None:
    """A no-op task: call its successors, or record the workflow's end."""
    started = time.time_ns() // 1000
    successors = NEXT.get(task, []) if dag else []
    for successor in successors:
        step.delay(workflow, successor, dag, data)
    if not successors:
        _redis.xadd(DONE, {"wf": workflow, "task": task, "at_us": started})
