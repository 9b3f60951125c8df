"""Autoscaling: the decision on synthetic load series (clock injected), processes sharing one
desired count through Redis, and slots retired by a scale-down without cancelling a task."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable
from itertools import pairwise

import orjson
import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from streamproc import Client, Keyspace
from streamproc.autoscale.fleet import desired_counts
from streamproc.autoscale.policy import ArrivalRate, Load, Scaler, needed, share
from streamproc.config import AutoscaleSettings
from tests.cli_runner import ECHO_AGENTS, at
from tests.cli_runner import run as run_cli
from tests.conftest import Engine, eventually
from tests.daemon import Daemon

SETTINGS = AutoscaleSettings(
    min_consumers=1, max_consumers=20, drain_target=10.0, cooldown=30.0, margin=0.2
)


def run(scaler: Scaler, loads: list[Load], every: float = 5.0) -> list[int]:
    """Feed one load per tick, each decision becoming the next tick's current count."""
    counts: list[int] = []
    current: int | None = None
    for tick, load in enumerate(loads):
        current = scaler.decide(tick * every, load, current)
        counts.append(current)
    return counts


def test_the_need_grows_with_the_backlog_and_with_rate_times_latency() -> None:
    def need(backlog: int, rate: float, latency: float | None) -> int:
        return needed(Load(backlog, rate, latency), 1, 1000, drain_target=10.0)

    assert need(0, 0.0, 1.0) == 1  # the floor
    assert [need(b, 0.0, 1.0) for b in (10, 100, 200, 400)] == [1, 10, 20, 40]
    assert [need(0, r, 2.0) for r in (1.0, 5.0, 10.0)] == [2, 10, 20]
    assert [need(0, 5.0, s) for s in (0.5, 2.0, 4.0)] == [3, 10, 20]
    assert need(50, 5.0, 2.0) == 20  # keeping up (10) plus draining 50 in 10 s (10)
    assert need(30, 0.0, None) == 3  # no latency reported yet: a task is taken to last 1 s


def test_scaling_up_is_immediate_and_scaling_down_waits_out_the_cooldown_in_steps() -> None:
    high, higher, low = Load(100, 0.0, 1.0), Load(200, 0.0, 1.0), Load(20, 0.0, 1.0)
    counts = run(Scaler(SETTINGS, 64), [high, higher] + [low] * 30)
    changes = [(tick * 5, b) for tick, (a, b) in enumerate(pairwise([0, *counts])) if a != b]
    # the need falls to 2 at t=10; each step waits a full 30 s window and retires at most half
    assert changes == [(0, 10), (5, 20), (40, 10), (70, 5), (100, 3), (130, 2)]


def test_a_need_back_near_the_current_count_restarts_the_cooldown() -> None:
    high, low, near = Load(100, 0.0, 1.0), Load(20, 0.0, 1.0), Load(85, 0.0, 1.0)
    counts = run(Scaler(SETTINGS, 64), [high] + [low] * 5 + [near] + [low] * 6 + [low])
    assert counts[:13] == [10] * 13  # the window reopened at t=35 and closes at t=65
    assert counts[13] == 5


def test_a_noisy_load_does_not_make_the_count_flap() -> None:
    rng = random.Random(7)
    loads = []
    for tick in range(200):
        rate = 10.0 * rng.uniform(0.85, 1.15)
        if tick % 17 == 0:
            rate *= 0.3  # a one-tick dip
        loads.append(Load(rng.randint(0, 5), rate, 1.0))
    loads += [Load(rng.randint(0, 5), 3.0 * rng.uniform(0.85, 1.15), 1.0) for _ in range(100)]
    counts = run(Scaler(SETTINGS, 64), loads)
    steady, falling = counts[:200], counts[200:]
    assert all(a <= b for a, b in pairwise(steady))  # rises to the noise's peak, then holds
    assert 11 <= steady[-1] <= 13
    assert all(a >= b for a, b in pairwise(falling))  # the load fell: steps down, never back
    assert falling[-1] < steady[-1] * (1 - SETTINGS.margin)


def test_the_count_stays_within_its_bounds() -> None:
    rng = random.Random(11)
    scaler = Scaler(AutoscaleSettings(min_consumers=2, max_consumers=12, cooldown=0.0), 64)
    loads = [Load(rng.choice([0, 10_000]), rng.uniform(0, 50), 1.0) for _ in range(300)]
    counts = run(scaler, [Load(10_000, 0.0, 1.0), *loads, *[Load(0, 0.0, 1.0)] * 10])
    assert min(counts) == 2 and max(counts) == 12
    assert Scaler(AutoscaleSettings(), concurrency=8).high == 8  # max defaults to concurrency
    to_zero = Scaler(AutoscaleSettings(min_consumers=0, cooldown=0.0, step_down=1.0), 8)
    assert run(to_zero, [Load(0, 0.0, None)]) == [0]


def test_the_arrival_rate_comes_from_entries_added_deltas() -> None:
    rate = ArrivalRate()
    readings = [(0.0, 100), (2.0, 140), (3.0, 140), (4.0, 10), (5.0, 20), (5.0, 30)]
    # first reading, 20/s, idle, counter went back (stream recreated), 10/s, clock stood still
    assert [rate.update(now, added) for now, added in readings] == [0, 20, 0, 0, 10, 0]


def test_each_process_takes_an_equal_share_rounded_up_within_its_concurrency() -> None:
    assert [share(10, live, 16) for live in (1, 2, 3, 4)] == [10, 5, 4, 3]
    assert share(10, 1, 8) == 8
    assert share(0, 2, 8) == 0


def scaled(**overrides: object) -> dict[str, object]:
    settings = dict(min_consumers=1, max_consumers=8, drain_target=0.5, cooldown=60.0)
    settings.update(overrides)
    return {"concurrency": 8, "autoscale": AutoscaleSettings(interval=0.1, **settings)}  # type: ignore[arg-type]


async def test_two_workers_follow_one_desired_count_and_their_shares_cover_it(
    resolver_only: Engine, keyspace: Keyspace, client: Client, redis: Redis
) -> None:
    members = keyspace.scale_members("sleep")
    await redis.zadd(members, {"gone-for-an-hour": 0})  # a crashed process: ignored, dropped
    workers = [resolver_only.start_worker(("sleep",), **scaled()) for _ in range(2)]
    spec = {
        "tasks": [{"id": f"s{i}", "agent": "sleep", "input": {"seconds": 0.2}} for i in range(40)]
    }
    workflow_id = await client.submit(spec)

    async def agreed() -> int:
        desired = await redis.get(keyspace.scale_desired("sleep"))
        scalers = [w.autoscaler for w in workers if w.autoscaler is not None]
        if desired is None or int(desired) < 2:
            return 0
        if any(s.desired["sleep"] != int(desired) or s.live["sleep"] != 2 for s in scalers):
            return 0
        assert sum(s.budget["sleep"] for s in scalers) >= int(desired)
        return int(desired)

    desired = await eventually(agreed)
    assert await redis.zscore(members, "gone-for-an-hour") is None
    assert await redis.get(keyspace.scale_lease("sleep")) in {w.consumer.encode() for w in workers}
    assert (await client.wait(workflow_id, timeout=30)).status == "completed"
    assert (await desired_counts(redis, keyspace, ["sleep", "echo"]))["sleep"] >= desired
    await resolver_only.stop()
    assert await redis.zcard(members) == 0  # each left on its way out
    assert await redis.exists(keyspace.scale_lease("sleep")) == 0

    async def desired_gone() -> bool:  # no count left behind for status or a scaler
        return await redis.exists(keyspace.scale_desired("sleep")) == 0

    await eventually(desired_gone, timeout=5)


async def test_a_change_of_the_desired_count_is_logged_with_its_load_rounded_for_people(
    resolver_only: Engine, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streamproc.autoscale.fleet")
    resolver_only.start_worker(("sleep",), **scaled())
    spec = {
        "tasks": [{"id": f"s{i}", "agent": "sleep", "input": {"seconds": 0.1}} for i in range(20)]
    }
    workflow_id = await client.submit(spec)

    async def logged() -> list[str]:
        return [r.getMessage() for r in caplog.records if "desired consumers of" in r.message]

    line = (await eventually(logged))[0]
    load = r"backlog \d+, rate \d+\.\d/s, latency (unknown|\d+(\.\d{1,3})?s)"
    assert re.fullmatch(rf"desired consumers of sleep: \S+ -> \d+ \({load}\)", line), line
    assert (await client.wait(workflow_id, timeout=30)).status == "completed"


def test_a_load_reads_rounded() -> None:
    assert str(Load(12, 23.990403390214894, 0.20134)) == ("backlog 12, rate 24.0/s, latency 0.201s")
    assert str(Load(0, 0.0, None)) == "backlog 0, rate 0.0/s, latency unknown"


async def test_scaling_down_retires_slots_as_their_tasks_finish_and_cancels_none(
    resolver_only: Engine, keyspace: Keyspace, client: Client, redis: Redis
) -> None:
    """The test holds the gate agent's lease and writes the desired count itself, as a lease
    holder would: 8 gate tasks run, the count drops to 1 while they block, then they finish."""
    await redis.set(keyspace.scale_lease("gate"), "the-test", px=120_000)
    await redis.set(keyspace.scale_desired("gate"), 8)
    worker = resolver_only.start_worker(("gate", "echo"), **scaled(max_consumers=16))
    gates = [{"id": f"g{i}", "agent": "gate", "input": i} for i in range(10)]
    end = {"id": "end", "agent": "echo", "input": "all", "needs": [g["id"] for g in gates]}
    workflow_id = await client.submit({"tasks": [*gates, end]})
    stream = keyspace.tasks(0, "gate")

    async def started(count: int, pending: int) -> list[str] | None:
        ledger = [e.decode().split()[0] for e in await redis.lrange(f"ledger:{workflow_id}", 0, -1)]
        try:
            held = (await redis.xpending(stream, "gate"))["pending"]
        except ResponseError:  # no group until the worker has started
            return None
        return ledger if len(ledger) == count and held == pending else None

    running = await eventually(lambda: started(8, 8))
    await redis.set(keyspace.scale_desired("gate"), 1)

    async def budget_cut() -> bool:
        return worker.autoscaler is not None and worker.autoscaler.budget["gate"] == 1

    await eventually(budget_cut)
    assert await started(8, 8) == running  # nothing cancelled, nothing new taken
    for task in running:
        await redis.rpush(f"open:{workflow_id}:{task}", 1)
    ninth = await eventually(lambda: started(9, 1))  # one slot: the rest run one at a time
    await redis.rpush(f"open:{workflow_id}:{ninth[-1]}", 1)
    tenth = await eventually(lambda: started(10, 1))
    await redis.rpush(f"open:{workflow_id}:{tenth[-1]}", 1)
    state = await client.wait(workflow_id, timeout=30)
    assert state.status == "completed"
    assert all(t.attempt == 1 for t in state.tasks)
    assert (await redis.xpending(stream, "gate"))["pending"] == 0
    kinds = [f[b"kind"] for _, f in await redis.xrange(keyspace.events(0))]
    assert b"task_requeued" not in kinds


async def test_a_worker_started_with_autoscale_publishes_a_desired_count_status_shows(
    redis_url: str, keyspace: Keyspace, worker_processes: Callable[..., Daemon]
) -> None:
    worker_processes("echo", "--autoscale", "--min-consumers", "2")

    async def desired() -> int | None:
        status = await run_cli("status", "--json", *ECHO_AGENTS, *at(redis_url, keyspace))
        rows = {r.get("agent"): r for r in map(orjson.loads, status.out.splitlines())}
        return rows["echo"]["desired"]

    assert await eventually(desired) == 2
