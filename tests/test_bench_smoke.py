"""``scripts/bench --only submit-cpu --quick`` runs end to end (its own redis-server, no worker)
and prints its figures.  Nothing here checks a figure: the machine's load decides them."""

from __future__ import annotations

import subprocess

import orjson

from tests.cli_runner import ROOT


def test_the_submit_cpu_scenario_runs_and_reports_each_shape() -> None:
    argv = ["--only", "submit-cpu", "--quick", "--no-limit", "--json"]
    done = subprocess.run(
        [str(ROOT / "scripts" / "bench"), *argv],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    [row] = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert row["scenario"] == "submit-cpu"
    assert set(row["cpu_us"]) == {
        "5 tasks",
        "5 tasks, prepare only",
        "1 task",
        "1 task, prepare only",
        "PING",
    }
    assert all(us > 0 for us in row["cpu_us"].values())
