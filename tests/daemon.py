"""``streamproc VERB`` as a subprocess of a test (or of ``scripts/chaos``): serving the test
agents, to be signalled, killed or waited for, its log kept in a file for diagnosis."""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from tests.cli_runner import ROOT, STREAMPROC, TEST_AGENTS

# Every daemon this process started, oldest first: the fault suite searches their logs for
# the canary key.
STARTED: list[Daemon] = []


class Daemon:
    """``streamproc VERB`` against ``namespace``, started at once.

    Its environment is ``env`` (the test's by default) with the repository root as
    PYTHONPATH, so ``--import tests.agents_for_tests`` finds the test agents, and the
    ledger those agents record to (``ledger_url``, else the engine's Redis).  ``args``
    follow the common options, so they win over them.  ``prefix`` runs it under another
    program (``faketime -f +30s``, ``ip netns exec``)."""

    def __init__(
        self,
        redis_url: str,
        namespace: str,
        verb: str,
        *args: str,
        env: Mapping[str, str] | None = None,
        ledger_url: str | None = None,
        prefix: tuple[str, ...] = (),
    ) -> None:
        self.verb = verb
        self.env = {
            **(os.environ if env is None else env),
            "PYTHONPATH": str(ROOT),
            "STREAMPROC_TEST_LEDGER_URL": ledger_url or redis_url,
        }
        self.args = [
            *prefix,
            str(STREAMPROC),
            verb,
            "--redis-url",
            redis_url,
            "--namespace",
            namespace,
            "--import",
            TEST_AGENTS,
            "--log-format",
            "text",
            *args,
        ]
        self.log = tempfile.NamedTemporaryFile(prefix=f"{verb}-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(self.args, env=self.env, stderr=self.log)
        STARTED.append(self)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def ready(self) -> bool:
        """Serving: past its start-up checks, with its signal handlers set."""
        text = self.log_text()
        return " serving " in text or " running over " in text

    def log_text(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    async def wait(self, timeout: float = 30) -> int:
        """The exit code, waited for without blocking the event loop (in-process daemons
        share it); a daemon still running after ``timeout`` fails the test with its log."""
        try:
            return await asyncio.to_thread(self.process.wait, timeout)
        except subprocess.TimeoutExpired:
            log = await asyncio.to_thread(self.log_text)
            raise AssertionError(f"{self.verb} still running; its log:\n{log}") from None

    def kill(self) -> None:
        if self.alive:
            self.process.kill()
        self.process.wait()
