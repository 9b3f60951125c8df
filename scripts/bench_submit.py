"""The ``submit-cpu`` scenario of ``scripts/bench``: the client CPU one submit of a fresh spec
costs, with no worker running (a submit only queues its root tasks).

A real producer sends a new spec, with new inputs, on every submit: each submit here gets a
dict built beforehand (so building it is not counted) that no earlier submit saw.  Two shapes:
the seed workflow's five tasks (``streamproc/examples/agentic.yaml``) and one task.  The
figure is ``time.process_time()`` over all of a shape's submits divided by their count; the
two shapes alternate in rounds, and each shape's figure is the median of its rounds.  Beside
them, to show where the time goes: the same specs only made ready to send (validated and laid
out, no round trip), and a bare PING (the client CPU of any round trip).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from bench import Result

from streamproc.client import Client
from streamproc.config import ClientSettings
from streamproc.store.keys import Keyspace

ROUNDS = 5


def seed_spec(n: int) -> dict[str, Any]:
    """The seed workflow's shape (five agents, t1 -> t2 -> t3 -> (t4, t5)), inputs made
    from ``n``."""
    topic = f"Agentic system #{n}"
    return {
        "name": "agentic",
        "adjust_rounds": 1,
        "tasks": [
            {"id": "t1", "agent": "description", "input": {"description": f"Describe {n}"}},
            {
                "id": "t2",
                "agent": "planning",
                "input": {"description": f"Plan the business flow {n}"},
                "needs": ["t1"],
            },
            {
                "id": "t3",
                "agent": "execution",
                "input": {"description": f"Execute and evaluate {n}", "topic": topic},
                "needs": ["t2"],
                "retries": 2,
                "timeout": 60,
            },
            {
                "id": "t4",
                "agent": "evaluation",
                "input": {
                    "description": f"Evaluate the result {n}",
                    "adjust": {"t3": {"description": "enhanced", "topic": topic}},
                },
                "needs": ["t3"],
            },
            {
                "id": "t5",
                "agent": "validation",
                "input": {"description": "Validate", "check": "t3", "topic": topic},
                "needs": ["t3"],
                "timeout": 60,
            },
        ],
    }


def one_task_spec(n: int) -> dict[str, Any]:
    return {"name": "one", "tasks": [{"id": "t1", "agent": "noop", "input": {"n": n}}]}


SHAPES: dict[str, Callable[[int], dict[str, Any]]] = {"5 tasks": seed_spec, "1 task": one_task_spec}


async def cpu_per_submit(
    client: Client, make: Callable[[int], dict[str, Any]], first: int, count: int
) -> float:
    """Client CPU seconds per submit of ``count`` fresh specs."""
    specs = [make(first + i) for i in range(count)]
    started = time.process_time()
    for spec in specs:
        await client.submit(spec)
    return (time.process_time() - started) / count


def cpu_per_prepare(
    client: Client, make: Callable[[int], dict[str, Any]], first: int, count: int
) -> float:
    """Client CPU seconds per fresh spec made ready to send (validated and laid out)."""
    specs = [make(first + i) for i in range(count)]
    started = time.process_time()
    for spec in specs:
        client._prepare(spec)
    return (time.process_time() - started) / count


async def cpu_per_ping(client: Client, count: int) -> float:
    """Client CPU seconds per PING: the floor of any one round trip."""
    started = time.process_time()
    for _ in range(count):
        await client.redis.ping()
    return (time.process_time() - started) / count


async def submit_cpu_scenario(url: str, quick: bool) -> Result:
    count = 500 if quick else 4_000
    keyspace = Keyspace(f"bench-submit-cpu-{time.time_ns()}")
    rounds: dict[str, list[float]] = {}
    wall = time.perf_counter()
    async with Client(url, ClientSettings(keyspace=keyspace)) as client:
        for make in SHAPES.values():  # warm: connection open, functions loaded
            await cpu_per_submit(client, make, -100, 100)
        for r in range(ROUNDS):
            for shape, make in SHAPES.items():
                used = await cpu_per_submit(client, make, r * count, count)
                rounds.setdefault(shape, []).append(used)
                used = cpu_per_prepare(client, make, r * count, count)
                rounds.setdefault(f"{shape}, prepare only", []).append(used)
            rounds.setdefault("PING", []).append(await cpu_per_ping(client, count))
    medians = {what: round(statistics.median(v) * 1e6, 1) for what, v in rounds.items()}
    return Result(
        scenario="submit-cpu",
        tasks=ROUNDS * count * 6,
        workflows=ROUNDS * count * len(SHAPES),
        seconds=time.perf_counter() - wall,
        latencies=[],
        latency=(
            f"none; client CPU per call, median of {ROUNDS} alternating rounds of {count}: "
            + ", ".join(f"{what} {us} µs" for what, us in medians.items())
        ),
        extra={
            "cpu_us": medians,
            "rounds_us": {w: [round(v * 1e6, 1) for v in r] for w, r in rounds.items()},
        },
    )
