"""Workloads and daemon processes shared by the fault tests and ``scripts/chaos``."""

from __future__ import annotations

import os
import random
from collections.abc import Iterable
from typing import Any

from tests.daemon import Daemon


def ledger_chain(n: int, seconds: float) -> dict[str, Any]:
    """``t0 -> t1 -> ... -> t<n-1>``, each a ledger task sleeping ``seconds``."""
    return {
        "tasks": [
            {"id": f"t{i}", "agent": "ledger", "input": {"seconds": seconds}}
            | ({"needs": [f"t{i - 1}"]} if i else {})
            for i in range(n)
        ]
    }


def ledger_dag(rng: random.Random, size: int, low: float, high: float) -> dict[str, Any]:
    """A random DAG of ``size`` ledger tasks; each needs up to two earlier ones and sleeps
    between ``low`` and ``high`` seconds."""
    tasks = []
    for i in range(size):
        needs = sorted(rng.sample(range(i), min(i, rng.randint(0, 2))))
        seconds = round(rng.uniform(low, high), 3)
        tasks.append(
            {"id": f"t{i}", "agent": "ledger", "input": {"seconds": seconds}}
            | ({"needs": [f"t{n}" for n in needs]} if needs else {})
        )
    return {"tasks": tasks}


def daemon(
    redis_url: str, namespace: str, verb: str, *args: str, failpoint: str = "", **kw: Any
) -> Daemon:
    """``streamproc VERB`` logging verbosely (``-v``), armed with ``failpoint``."""
    env = {**os.environ, "STREAMPROC_FAILPOINT": failpoint}
    return Daemon(redis_url, namespace, verb, *args, "-v", env=env, **kw)


def worker(redis_url: str, namespace: str, agents: str, *extra: str, **kw: Any) -> Daemon:
    """A worker with the tests' visibility timeout (3 s)."""
    return daemon(
        redis_url, namespace, "worker", "--agent", agents, "--visibility-timeout", "3", *extra, **kw
    )


def resolver(redis_url: str, namespace: str, **kw: Any) -> Daemon:
    return daemon(redis_url, namespace, "resolver", **kw)


async def all_ready(daemons: Iterable[Daemon]) -> bool:
    """For ``eventually``: every daemon past its start-up checks."""
    return all(d.ready for d in daemons)
