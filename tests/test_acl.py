"""Least-privilege ACL users (deploy/acl.conf): producer, worker and resolver run a workflow
with only their rules, and each is refused what it does not need."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from streamproc import Client, ClientSettings, Keyspace
from streamproc.engine.index import prune
from streamproc.errors import NotReplicated
from streamproc.ops.deadletters import purge, purge_one
from streamproc.ops.search_stats import search_figures
from streamproc.store import folded, functions
from streamproc.store.tenants import Quota
from streamproc.testing.embedded import EmbeddedRedis
from tests.acl_file import acl_users
from tests.cli_runner import assert_one_line_error, run
from tests.conftest import Engine, eventually, stowed
from tests.test_worker_applies import entries_added

SPEC = {
    "tasks": [
        {"id": "a", "agent": "echo", "input": 1},
        {"id": "b", "agent": "echo", "needs": ["a"]},
    ]
}


GATE = {"id": "gate", "wait_for": "approval", "needs": ["b"], "timeout": 60}


@pytest.fixture(scope="module")
def acl_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
async def locked_down(acl_server: EmbeddedRedis) -> AsyncIterator[str]:
    """The ACL file applied; yields the server's host:port.  The admin loads the functions."""
    admin = Redis.from_url(acl_server.url)
    await functions.load(admin)
    users = acl_users()
    for words in users[:-1]:  # everyone but "default off"
        await admin.acl_setuser(words[0], reset=True)
        await admin.execute_command("ACL", "SETUSER", *words)
    await admin.execute_command("ACL", "SETUSER", *users[-1])
    yield f"127.0.0.1:{acl_server.port}"
    restore = Redis.from_url(f"redis://sp-admin:sp-admin@127.0.0.1:{acl_server.port}/0")
    await restore.execute_command("ACL", "SETUSER", "default", "on", "nopass", "~*", "&*", "+@all")
    await restore.aclose()
    await admin.aclose()


def url(user: str, where: str) -> str:
    return f"redis://{user}:{user}@{where}/0"


async def reported(where: str) -> int:
    """Completions ever reported to the resolver (added to the completion stream)."""
    admin = Redis.from_url(url("sp-admin", where))
    try:
        return await entries_added(admin, Keyspace("sp").done(0))
    finally:
        await admin.aclose()


async def all_stowed(where: str, keyspace: Keyspace, workflow_ids: list[str]) -> None:
    """Wait until the engine, under its roles' rules, stowed these ended workflows."""
    admin = Redis.from_url(url("sp-admin", where))
    try:
        for workflow_id in workflow_ids:
            await stowed(admin, keyspace, workflow_id)
    finally:
        await admin.aclose()


async def test_each_role_runs_with_only_its_rules(locked_down: str) -> None:
    """The worker may not write the other agents' streams, so it reports its completions to
    the resolver instead of applying them."""
    keyspace = Keyspace("sp")
    before = await reported(locked_down)
    engine = Engine(url("sp-resolver", locked_down), keyspace)
    engine.start_resolver()
    engine.redis = engine.redis.from_url(url("sp-worker-echo", locked_down))
    engine.start_worker(("echo",))
    try:
        async with Client(url("sp-producer", locked_down), ClientSettings(keyspace=keyspace)) as c:
            state = await c.wait(await c.submit(SPEC), timeout=20)
            gated = await c.submit({"tasks": [*SPEC["tasks"], GATE]})
            await c.signal(gated, "approval", "yes")  # kept, or it resumes the gate
            gate = await c.wait(gated, timeout=20)
    finally:
        await engine.stop()
    assert state.status == "completed"
    assert state.results["b"] == {"input": None, "deps": {"a": 1}}
    assert gate.results["gate"] == "yes"
    assert await reported(locked_down) - before == 4
    await all_stowed(locked_down, keyspace, [state.id, gated])  # by the resolver


async def applying_worker(where: str, keyspace: Keyspace, *rules: str) -> Engine:
    """A worker alone (no resolver), its user granted every task stream and ``rules``: it
    applies its own completions."""
    admin = Redis.from_url(url("sp-admin", where))
    await admin.execute_command("ACL", "SETUSER", "sp-worker-echo", "~{sp:*}:tasks:*", *rules)
    await admin.aclose()
    engine = Engine(url("sp-producer", where), keyspace)
    engine.redis = engine.redis.from_url(url("sp-worker-echo", where))
    engine.start_worker(("echo",))
    return engine


async def test_a_worker_granted_every_task_stream_applies_its_own_completions(
    locked_down: str,
) -> None:
    keyspace = Keyspace("sp")
    before = await reported(locked_down)
    engine = await applying_worker(locked_down, keyspace, "+smembers")
    try:
        async with Client(url("sp-producer", locked_down), ClientSettings(keyspace=keyspace)) as c:
            state = await c.wait(await c.submit(SPEC), timeout=20)
            await all_stowed(locked_down, keyspace, [state.id])  # by the worker
    finally:
        await engine.stop()
    assert state.results["b"] == {"input": None, "deps": {"a": 1}}
    assert await reported(locked_down) == before


async def test_a_user_that_may_not_stow_leaves_ended_workflows_whole_and_says_so_once(
    locked_down: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker user granted what an older acl.conf granted (no STRLEN): its workflows
    complete, stay hashes, and the worker says once what to grant."""
    keyspace = Keyspace("sp")
    engine = await applying_worker(locked_down, keyspace, "+smembers", "-strlen")
    try:
        async with Client(url("sp-producer", locked_down), ClientSettings(keyspace=keyspace)) as c:
            first = await c.wait(await c.submit(SPEC), timeout=20)
            await eventually(lambda: refused_stow(caplog))
            second = await c.wait(await c.submit(SPEC), timeout=20)
    finally:
        await engine.stop()
    assert (first.status, second.status) == ("completed", "completed")
    admin = Redis.from_url(url("sp-admin", locked_down))
    assert await admin.exists(keyspace.workflow(first.id), keyspace.workflow(second.id)) == 2
    await admin.aclose()
    assert await refused_stow(caplog) == 1


async def refused_stow(caplog: pytest.LogCaptureFixture) -> int:
    return sum("may not stow" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")


async def test_the_producer_may_ask_for_replicas_and_fsync(locked_down: str) -> None:
    """WAIT and INFO are the producer's: with no replica, the answer is NotReplicated, not a
    permission error (and durable falls back to a warning on Redis without WAITAOF)."""
    settings = ClientSettings(
        keyspace=Keyspace("sp"), durable=True, replicas=1, replica_timeout=0.01
    )
    async with Client(url("sp-producer", locked_down), settings) as producer:
        with pytest.raises(NotReplicated):
            await producer.submit(SPEC)


@pytest.mark.parametrize(
    "command",
    [
        ("FLUSHALL",),
        ("CONFIG", "SET", "maxmemory", "1"),
        ("KEYS", "*"),
        ("XTRIM", "{sp:0}:events", "MAXLEN", "0"),
        ("XGROUP", "DESTROY", "{sp:0}:tasks:echo", "echo"),
        ("EVAL", "return 1", "0"),
        (
            "FUNCTION",
            "LOAD",
            "REPLACE",
            "#!lua name=x\nredis.register_function('x', function() end)",
        ),
    ],
)
async def test_the_producer_is_refused_everything_else(
    locked_down: str, command: tuple[str, ...]
) -> None:
    producer = Redis.from_url(url("sp-producer", locked_down))
    try:
        with pytest.raises(NoPermissionError):
            await producer.execute_command(*command)
    finally:
        await producer.aclose()


async def test_a_worker_cannot_read_another_agents_stream_and_anonymous_users_are_refused(
    locked_down: str,
) -> None:
    worker = Redis.from_url(url("sp-worker-echo", locked_down))
    try:
        with pytest.raises(NoPermissionError):
            await worker.xreadgroup("sleep", "me", {"{sp:0}:tasks:sleep": ">"}, count=1)
        with pytest.raises(NoPermissionError):
            await worker.hset("{sp:0}:secret", "k", "v")
    finally:
        await worker.aclose()
    anonymous = Redis.from_url(f"redis://{locked_down}/0")
    try:
        with pytest.raises((AuthenticationError, ResponseError), match=r"NOAUTH|authenticated"):
            await anonymous.ping()
    finally:
        await anonymous.aclose()


async def test_the_producer_may_submit_for_a_tenant_within_its_limits(locked_down: str) -> None:
    """A tenant's submit reads and releases its usage (sp_usage, ZRANGE of the retained set)."""
    keyspace = Keyspace("sp", shards=2)
    admin = Redis.from_url(url("sp-admin", locked_down))
    try:  # a deployment of two shards: not the one-shard epoch other tests' daemons began
        await admin.delete(keyspace.epoch(0))
    finally:
        await admin.aclose()
    async with Client(url("sp-producer", locked_down), ClientSettings(keyspace=keyspace)) as c:
        quota = Quota("acme", max_workflows=5, max_bytes=1 << 20)
        _, created = await c.create(SPEC, "acme.acl-check", quota)
        assert created
        assert await c.cancel("acme.acl-check")


async def test_the_producer_lists_workflows_and_the_resolver_prunes_the_index(
    locked_down: str,
) -> None:
    """Listing drops the expired workflows it meets (sp_unindex) as the producer; the
    resolver's walk over the index does the same with its own rules."""
    keyspace = Keyspace("sp")
    settings = ClientSettings(keyspace=keyspace, workflow_ttl=0.05)
    resolver = Redis.from_url(url("sp-resolver", locked_down))
    try:
        async with Client(url("sp-producer", locked_down), settings) as producer:
            first, second = [await producer.submit(SPEC, f"listed-{i}") for i in range(2)]
            await producer.cancel(first)
            await eventually(lambda: gone(producer, first))
            listed = [w.id for w in (await producer.list(limit=500)).workflows]
            assert second in listed and first not in listed
            await producer.cancel(second)
            await eventually(lambda: gone(producer, second))
        shard = keyspace.shard_of(second)
        await prune(resolver, keyspace, shard, 0)
        assert await resolver.zscore(keyspace.index(shard), second) is None
    finally:
        await resolver.aclose()


async def gone(client: Client, workflow_id: str) -> bool:
    return not await folded.exists(client.redis, client.keyspace, workflow_id)


async def test_a_worker_writes_output_streams_and_the_producer_reads_them(
    locked_down: str,
) -> None:
    """What Task.emit writes (XADD capped, PEXPIRE NX) is the worker's; following a
    workflow's output (XREAD, XRANGE) is the producer's, which the API runs as."""
    worker = Redis.from_url(url("sp-worker-echo", locked_down))
    producer = Redis.from_url(url("sp-producer", locked_down))
    output = Keyspace("sp").output("wf-1")
    try:
        await worker.xadd(output, {"chunk": '"hi"'}, maxlen=10, approximate=True)
        assert await worker.pexpire(output, 60_000, nx=True)
        assert [fields for _, fields in await producer.xrange(output)] == [{b"chunk": b'"hi"'}]
        assert await producer.xread({output: "0-0"}, count=1)
    finally:
        await worker.aclose()
        await producer.aclose()


async def test_the_producer_reads_the_search_figures_and_purges_dead_letters(
    locked_down: str,
) -> None:
    """``GET /search`` and the purges as the API runs them: the cache's counters (read only)
    and each provider's shared limits, and dead letters deleted by XRANGE and XDEL."""
    keyspace = Keyspace("sp")
    admin = Redis.from_url(url("sp-admin", locked_down))
    producer = Redis.from_url(url("sp-producer", locked_down))
    try:
        await admin.hset(keyspace.cache_stats(), "brave:hit", 2)
        await admin.set(keyspace.api_limits("brave", "none")[2], "out of searches", px=60_000)
        figures = await search_figures(producer, keyspace)
        brave = next(p for p in figures["providers"] if p["provider"] == "brave")
        assert (brave["hits"], brave["spent"]) == (2, "out of searches")
        with pytest.raises(NoPermissionError):
            await producer.hset(keyspace.cache_stats(), "brave:hit", 0)
        entry_id = (await admin.xadd(keyspace.dead(0, "echo"), {"reason": "r"})).decode()
        assert (await purge_one(producer, keyspace, "echo", entry_id)).entry_id == entry_id
        for _ in "ab":
            await admin.xadd(keyspace.dead(0, "echo"), {"reason": "r"})
        assert await purge(producer, keyspace, "echo") == 2
    finally:
        await admin.aclose()
        await producer.aclose()


async def test_a_missing_or_refused_password_is_said_in_one_line_after_one_try(
    locked_down: str,
) -> None:
    """redis-py raises a refused password as a ConnectionError: it was retried with backoff,
    connect within command, some 36 attempts (10 s) before the CLI said anything."""
    admin = Redis.from_url(url("sp-admin", locked_down))
    try:
        before = (await admin.info("stats"))["total_connections_received"]
        missing = await run("status", "--redis-url", f"redis://{locked_down}/0")
        assert_one_line_error(
            missing,
            "error: Redis requires a password, and the URL gives none: "
            "redis://:PASSWORD@HOST:PORT/DB (USER:PASSWORD@ for an ACL user)",
        )
        assert missing.code == 2
        wrong = await run("status", "--redis-url", f"redis://sp-admin:wrong@{locked_down}/0")
        assert_one_line_error(wrong, "error: Redis refused the credentials: ")
        assert wrong.code == 2
        with pytest.raises(AuthenticationError):
            async with Client(f"redis://{locked_down}/0") as client:
                await client.submit({"tasks": [{"id": "a", "agent": "x"}]})
        attempts = (await admin.info("stats"))["total_connections_received"] - before
        assert attempts <= 3, attempts  # one each (a client closing none it opened)
    finally:
        await admin.aclose()
