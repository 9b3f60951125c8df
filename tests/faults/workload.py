"""Workloads and daemon processes shared by the fault tests and ``scripts/chaos``."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

TESTS = Path(__file__).parent.parent
STARTED: list[Daemon] = []  # every daemon this process started, oldest first


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


class Daemon:
    """``streamproc VERB`` in a subprocess (with the test agents importable), to be killed,
    stopped, continued or terminated; its log goes to a temp file kept for diagnosis (and
    searched for the canary key by the fault suite: see ``STARTED``).
    ``prefix`` runs it under another program (``faketime -f +30s``)."""

    def __init__(
        self,
        redis_url: str,
        namespace: str,
        *args: str,
        failpoint: str = "",
        ledger_url: str | None = None,
        prefix: tuple[str, ...] = (),
    ) -> None:
        self.env = {
            **os.environ,
            "PYTHONPATH": str(TESTS),
            "STREAMPROC_TEST_LEDGER_URL": ledger_url or redis_url,
            "STREAMPROC_FAILPOINT": failpoint,
        }
        self.args = [
            *prefix,
            str(Path(sys.executable).parent / "streamproc"),
            *args,
            "--redis-url",
            redis_url,
            "--namespace",
            namespace,
            "--import",
            "agents_for_tests",
            "--log-format",
            "text",
            "-v",
        ]
        self.log = tempfile.NamedTemporaryFile(prefix="daemon-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(self.args, env=self.env, stderr=self.log)
        STARTED.append(self)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    @property
    def ready(self) -> bool:
        """Serving: past its start-up checks, with its signal handlers set."""
        text = self.log_text()
        return " serving " in text or " running over " in text

    def log_text(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def kill(self) -> None:
        if self.alive:
            self.process.kill()
        self.process.wait()


def worker(redis_url: str, namespace: str, agents: str, *extra: str, **kw: Any) -> Daemon:
    """A worker with the tests' visibility timeout (3 s)."""
    return Daemon(
        redis_url, namespace, "worker", "--agent", agents, "--visibility-timeout", "3", *extra, **kw
    )


def resolver(redis_url: str, namespace: str, **kw: Any) -> Daemon:
    return Daemon(redis_url, namespace, "resolver", **kw)


async def all_ready(daemons: Iterable[Daemon]) -> bool:
    """For ``eventually``: every daemon past its start-up checks."""
    return all(d.ready for d in daemons)


async def exited(daemon: Daemon) -> int:
    """The daemon's exit code, once it exits (at most 30 s)."""
    return await asyncio.to_thread(daemon.process.wait, 30)
