"""A stateful model of the fault matrix: hypothesis drives submits, worker SIGKILLs, zombie
pauses (SIGSTOP: another worker reclaims the paused one's tasks), resumes and duplicate
completions against the real engine (worker and resolver processes), and the oracle checks
I1-I5 once the steps are over.  Small on purpose (CI); scripts/chaos runs the rows at size."""

from __future__ import annotations

import asyncio
import random
import signal
import uuid
from typing import Any, cast

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test
from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace
from streamproc.store.codec import Entry
from tests.daemon import Daemon
from tests.faults import oracle
from tests.faults.workload import ledger_dag, resolver, worker


class EngineMachine(RuleBasedStateMachine):
    redis_url = ""

    def __init__(self) -> None:
        super().__init__()
        # Its own loop, never set as the thread's current one: pytest-asyncio keeps that.
        self.runner = asyncio.Runner(loop_factory=asyncio.new_event_loop)
        self.keyspace = Keyspace(namespace=f"sm{uuid.uuid4().hex[:10]}")
        self.client = self.runner.run(self._open())
        self.resolver = resolver(self.redis_url, self.keyspace.namespace)
        self.workers = [self._worker(), self._worker()]
        self.paused: list[Daemon] = []
        self.killed: list[Daemon] = []
        self.ids: list[str] = []

    async def _open(self) -> Client:
        return await Client(self.redis_url, ClientSettings(keyspace=self.keyspace)).__aenter__()

    def _worker(self) -> Daemon:
        return worker(self.redis_url, self.keyspace.namespace, "ledger")

    def _run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    @rule(seed=st.integers(0, 2**16), size=st.integers(1, 6), count=st.integers(1, 4))
    def submit(self, seed: int, size: int, count: int) -> None:
        rng = random.Random(seed)
        specs = [ledger_dag(rng, size, 0.0, 0.2) for _ in range(count)]
        self.ids += self._run(self.client.submit_many(specs))

    @precondition(lambda self: bool(self.workers))
    @rule(index=st.integers(0, 7))
    def kill_worker(self, index: int) -> None:
        victim = self.workers.pop(index % len(self.workers))
        victim.signal(signal.SIGKILL)
        self.killed.append(victim)
        self.workers.append(self._worker())  # a supervisor restarts it

    @precondition(lambda self: len(self.workers) > 1)
    @rule(index=st.integers(0, 7))
    def pause_worker(self, index: int) -> None:
        """A zombie: after the visibility timeout another worker reclaims its tasks."""
        zombie = self.workers.pop(index % len(self.workers))
        zombie.signal(signal.SIGSTOP)
        self.paused.append(zombie)

    @precondition(lambda self: bool(self.paused))
    @rule()
    def resume_worker(self) -> None:
        zombie = self.paused.pop(0)
        zombie.signal(signal.SIGCONT)
        self.workers.append(zombie)

    @rule()
    def duplicate_completion(self) -> None:
        self._run(self._duplicate_last_completion())

    async def _duplicate_last_completion(self) -> None:
        done = self.keyspace.done(0)
        last = cast(list[Entry], await self.client.redis.xrevrange(done, count=1))
        for _, fields in last:
            await self.client.redis.xadd(done, fields)  # type: ignore[arg-type]

    def teardown(self) -> None:
        try:
            for zombie in self.paused:
                zombie.signal(signal.SIGCONT)
            if not self.workers:
                self.workers.append(self._worker())
            verdict = self._run(self._verdict())
            verdict.assert_invariants()
            alive = [d.alive for d in [self.resolver, *self.workers, *self.paused]]
            assert all(alive), "I4: a daemon that was not killed died"
        finally:
            for daemon in [self.resolver, *self.workers, *self.paused, *self.killed]:
                daemon.kill()
            self._run(self.client.close())
            self.runner.close()

    async def _verdict(self) -> oracle.Verdict:
        async with Redis.from_url(self.redis_url) as ledger:
            return await oracle.check(self.client, ledger, self.ids, timeout=40)


def test_random_faults_keep_i1_to_i5(redis_url: str) -> None:
    EngineMachine.redis_url = redis_url
    run_state_machine_as_test(
        EngineMachine,
        settings=settings(
            max_examples=5,
            stateful_step_count=8,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
