"""Row H2: the password of a daemon's ACL user is wrong, or changes under it.

What an operator can demand.  A daemon cannot learn a new password by itself, and killing it
would drop its in-flight work and, under a supervisor, crash-loop it.  So a daemon whose
credentials stop working mid-run keeps running: it logs one clear line saying Redis refused
its credentials (never the password), retries with capped backoff, and carries on by itself
as soon as the credentials it holds work again.  A rotation therefore adds the new password
next to the old one (an ACL user may have several), restarts each daemon with the new one,
then removes the old; a password changed outright stalls the daemons that still hold the
old one until it is restored or they are restarted.  A daemon *started* with a password
Redis refuses is misconfigured: it exits at once with a one-line error.

Redis keeps a connection authenticated when its user's password changes, so the test drops
the worker's connections (CLIENT KILL USER) after the change, as a restart of Redis or a
network blip would.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace
from streamproc.store import functions
from streamproc.testing.embedded import EmbeddedRedis
from tests.acl_file import acl_users
from tests.cli_runner import ECHO_AGENTS, assert_one_line_error, run
from tests.conftest import Engine, eventually
from tests.daemon import Daemon
from tests.faults.workload import worker

USER = "sp-worker-echo"  # deploy/acl.conf's worker role, serving the agent "echo"
NAMESPACE = "sp"  # the one deploy/acl.conf's key patterns name
SPEC = {"tasks": [{"id": "e", "agent": "echo", "input": 1}]}
REFUSED = "redis refused the credentials"


@pytest.fixture
def server() -> Iterator[EmbeddedRedis]:
    """A Redis of the test's own: its ACL users change under it."""
    with EmbeddedRedis() as running:
        yield running


@pytest.fixture
async def admin(server: EmbeddedRedis) -> AsyncIterator[Redis]:
    """The default user (left open, for the resolver and the client), once it has loaded the
    functions and created the shipped worker role as ``USER``, its password for the test."""
    async with Redis.from_url(server.url) as redis:
        await functions.load(redis)  # the worker role may not load them
        (rules,) = [words for words in acl_users() if words[0] == USER]
        await redis.execute_command("ACL", "SETUSER", *rules)
        yield redis


@contextlib.asynccontextmanager
async def engine_on(server: EmbeddedRedis) -> AsyncIterator[Client]:
    """A resolver in this process and a client, both as the default user."""
    keyspace = Keyspace(NAMESPACE)
    engine = Engine(server.url, keyspace)
    engine.start_resolver()
    try:
        async with Client(server.url, ClientSettings(keyspace=keyspace)) as client:
            yield client
    finally:
        await engine.stop()


def as_user(server: EmbeddedRedis, password: str) -> str:
    return f"redis://{USER}:{password}@127.0.0.1:{server.port}/0"


async def set_passwords(admin: Redis, *passwords: str) -> None:
    await admin.execute_command("ACL", "SETUSER", USER, "resetpass", *(f">{p}" for p in passwords))


async def refusals(admin: Redis) -> int:
    """Failed AUTHs of ``USER`` that Redis logged (ACL LOG counts repeats in one entry)."""
    entries = await admin.acl_log()
    return sum(int(e["count"]) for e in entries if (e["reason"], e["username"]) == ("auth", USER))


async def test_h2_a_password_changed_mid_run_stalls_the_worker_without_crashing_until_restored(
    server: EmbeddedRedis, admin: Redis
) -> None:
    old, new = f"old-{uuid.uuid4().hex}", f"new-{uuid.uuid4().hex}"
    await set_passwords(admin, old)
    async with engine_on(server) as client:
        daemon = worker(as_user(server, old), NAMESPACE, "echo")
        try:
            assert (await client.wait(await client.submit(SPEC), timeout=20)).status == "completed"

            await set_passwords(admin, new)
            await admin.execute_command("CLIENT", "KILL", "USER", USER)
            stalled = await client.submit(SPEC)
            await eventually(lambda: _logged(daemon, REFUSED), timeout=15)
            before, since = await refusals(admin), time.monotonic()
            # Each loop retries its step with backoff (a refusal is no longer retried inside
            # redis-py too, 36 AUTHs a step): still trying, not a hot loop.
            await eventually(lambda: _refused_more(admin, before + 10), timeout=15)
            assert time.monotonic() - since > 1, "backoff: not a hot loop of AUTHs"
            assert daemon.alive and (await client.get(stalled)).status == "running"

            await set_passwords(admin, old)
            assert (await client.wait(stalled, timeout=20)).status == "completed"
            assert daemon.alive, "the same process carried on"
        finally:
            daemon.kill()
    log = daemon.log_text()
    assert "Traceback" not in log, log
    assert old not in log and new not in log, "no password in the log"
    lines = [line for line in log.splitlines() if REFUSED in line]
    assert 1 <= len(lines) <= 20, "a line per loop that met it, not one per retry"


async def test_h2_a_rotation_that_adds_the_new_password_first_never_stalls_the_work(
    server: EmbeddedRedis, admin: Redis
) -> None:
    old, new = f"old-{uuid.uuid4().hex}", f"new-{uuid.uuid4().hex}"
    await set_passwords(admin, old)
    async with engine_on(server) as client:
        daemons = [worker(as_user(server, old), NAMESPACE, "echo")]
        try:
            assert (await client.wait(await client.submit(SPEC), timeout=20)).status == "completed"
            await set_passwords(admin, old, new)
            daemons.append(worker(as_user(server, new), NAMESPACE, "echo"))
            await eventually(lambda: _logged(daemons[1], " serving "), timeout=15)
            daemons[0].signal(signal.SIGTERM)
            assert await asyncio.to_thread(daemons[0].process.wait, 30) == 0
            await set_passwords(admin, new)
            await admin.execute_command("CLIENT", "KILL", "USER", USER)
            assert (await client.wait(await client.submit(SPEC), timeout=20)).status == "completed"
        finally:
            for daemon in daemons:
                daemon.kill()
    assert all(REFUSED not in d.log_text() for d in daemons)


async def _logged(daemon: Daemon, text: str) -> bool:
    return text in daemon.log_text()


async def _refused_more(admin: Redis, count: int) -> bool:
    return await refusals(admin) >= count


async def test_h2_a_worker_started_with_a_wrong_password_exits_with_a_one_line_error(
    server: EmbeddedRedis, admin: Redis
) -> None:
    await set_passwords(admin, "the-right-one")
    url = as_user(server, "not-the-right-one")
    result = await run(
        "worker", "--agent", "echo", *ECHO_AGENTS, "--redis-url", url, "--namespace", NAMESPACE
    )
    assert_one_line_error(result, "error: Redis refused the credentials: ")
    assert "not-the-right-one" not in result.err
