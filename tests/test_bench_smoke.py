"""``scripts/bench --quick`` scenarios run end to end (each with its own redis-server) and
print their figures: submit-cpu (no worker), redis-ir (Redis under valgrind), submit-ir (the
producer under valgrind), and lat, chain and memory, which read what the workflows they ran
kept (ended workflows stowed).  Nothing here checks a figure against a target: the
machine's load decides them."""

from __future__ import annotations

import subprocess
from typing import Any

import orjson

from tests.cli_runner import ROOT


def bench(*scenarios: str, timeout: float) -> list[dict[str, Any]]:
    """The JSON rows of ``scripts/bench --only <scenarios> --quick``."""
    argv = ["--only", ",".join(scenarios), "--quick", "--no-limit", "--json"]
    done = subprocess.run(
        [str(ROOT / "scripts" / "bench"), *argv],
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return [orjson.loads(line) for line in done.stdout.splitlines()]


def test_the_submit_cpu_scenario_runs_and_reports_each_shape() -> None:
    [row] = bench("submit-cpu", timeout=60)
    assert row["scenario"] == "submit-cpu"
    assert set(row["cpu_us"]) == {
        "5 tasks",
        "5 tasks, prepare only",
        "1 task",
        "1 task, prepare only",
        "PING",
    }
    assert all(us > 0 for us in row["cpu_us"].values())


def test_the_lat_chain_and_memory_scenarios_read_what_their_workflows_kept() -> None:
    lat, chain, memory = bench("lat", "chain", "memory", timeout=240)
    assert (lat["scenario"], lat["workflows"], chain["hops"]) == ("lat", 500, 900)
    assert lat["p99_ms"] > 0 and chain["hop_p99_us"] > 0  # read from the workflows' results
    shapes = memory["memory"]
    assert set(shapes) == {"5 tasks", "1 task"}
    assert all(shape["archive_bytes"] > 0 for shape in shapes.values())


def test_the_redis_ir_scenario_counts_each_side_of_each_shape() -> None:
    """Under valgrind (on every machine here): a 5-task workflow runs five completions where a
    one-task one runs one, so it must count more instructions on the run side."""
    [row] = bench("redis-ir", timeout=300)
    shapes = row["redis_instructions"]
    assert set(shapes) == {"5 tasks", "1 task", "dag"}
    for figures in shapes.values():
        assert figures["submit"] > 0 and figures["run"] > 0
        assert figures["total"] == figures["submit"] + figures["run"]
    assert shapes["5 tasks"]["run"] > 2 * shapes["1 task"]["run"]


def test_the_submit_ir_scenario_counts_a_larger_spec_as_more_work() -> None:
    """Under valgrind: five tasks are more to check, encode and send than one."""
    [row] = bench("submit-ir", timeout=240)
    shapes = row["instructions"]
    assert set(shapes) == {"5 tasks", "1 task"}
    assert shapes["5 tasks"] > shapes["1 task"] > 0


def test_the_engine_ir_scenario_counts_five_tasks_as_more_work_than_one() -> None:
    """Under valgrind: a five-task workflow is five reads, runs and completions to the one of
    a one-task workflow, and its stowing more fields."""
    [row] = bench("engine-ir", timeout=300)
    shapes = row["instructions"]
    assert set(shapes) == {"5 tasks", "1 task"}
    assert shapes["5 tasks"] > 2 * shapes["1 task"] > 0
