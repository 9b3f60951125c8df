"""The prototype's workflow (describe -> plan -> execute each step of the plan -> evaluate,
validate) through real worker processes, against local stand-ins of the search and chat APIs."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from streamproc import Client, Keyspace, WorkflowSpec
from streamproc.ops.progress import render_state
from streamproc.outbound.cache import cache_stats
from streamproc.outbound.providers.settings import KEY_VARIABLES
from streamproc.store.state import WorkflowState
from streamproc.testing.embedded import EmbeddedRedis
from streamproc.testing.fakes import Behaviour, Fakes
from streamproc.testing.fakes.server import ANGLES
from streamproc_agents.agentic import completeness, render
from streamproc_agents.plans import FIXED_PLAN
from tests.cli_runner import at, run
from tests.conftest import Engine
from tests.daemon import Daemon

EXAMPLES = Path(__file__).parents[1] / "streamproc" / "examples"
SEED = EXAMPLES / "agentic.yaml"
STATIC = EXAMPLES / "agentic_static.yaml"
AGENTS = "description,planning,execution,evaluation,validation"


def searched(state: WorkflowState) -> list[str]:
    """The queries of t3's instances, in order."""
    return [result["query"] for result in state.results["t3"]]


def without_api_keys() -> dict[str, str]:
    """This process's environment minus any real search API key."""
    return {k: v for k, v in os.environ.items() if k not in KEY_VARIABLES.values()}


@pytest.fixture
async def stand_ins() -> AsyncIterator[Fakes]:
    async with Fakes(retry_after=0, stall=10.0) as fakes:
        yield fakes


@pytest.fixture
def seed_workers(stand_ins: Fakes, worker_processes: Callable[..., Daemon]) -> Callable[[], Daemon]:
    """Worker processes serving the five agents, with only the stand-ins' search keys set."""

    def start() -> Daemon:
        env = without_api_keys()
        return worker_processes(AGENTS, env={**env, **stand_ins.search_env()})

    return start


async def test_the_seed_workflow_completes_through_worker_processes_then_hits_the_cache(
    resolver_only: Engine,
    client: Client,
    keyspace: Keyspace,
    redis_url: str,
    stand_ins: Fakes,
    seed_workers: Callable[[], Daemon],
) -> None:
    seed_workers()
    seed_workers()
    spec = WorkflowSpec.load(SEED)
    first = await client.wait(await client.submit(spec), timeout=60)
    assert first.status == "completed", render_state(first)
    results = first.results
    assert results["t1"].startswith("Components: Agent, Task Manager")
    assert results["t2"] == list(FIXED_PLAN)
    instances = [f"t3[{i}]" for i in range(len(FIXED_PLAN))]
    assert [t.id for t in first.tasks] == ["t1", "t2", "t3", "t4", "t5", *instances]
    assert results["t3"] == [results[i] for i in instances]
    assert searched(first) == [f"Agentic system {step}" for step in FIXED_PLAN]
    for found in results["t3"]:
        assert found["provider"] == "serpapi" and len(found["results"]) >= 3
        assert all(set(hit) == {"title", "url", "snippet"} for hit in found["results"])
    assert results["t4"].startswith("Evaluated t3: ")
    validation = results["t5"]
    assert validation["score"] == completeness(render(results["t3"]), "Agentic")
    assert all(render(found) in render(results["t3"]) for found in results["t3"])
    assert validation["complete"] == (validation["score"] >= 80)
    assert validation["supplement"]
    assert all(t.attempt == 1 for t in first.tasks)
    searches = len(FIXED_PLAN) + 1  # one per step of the plan, and t5's
    assert stand_ins.serpapi.requests == searches
    assert {f.requests for name, f in stand_ins.search.items() if name != "serpapi"} == {0}

    second = await client.wait(await client.submit(spec), timeout=60)
    assert second.status == "completed"
    assert [r["results"] for r in second.results["t3"]] == [r["results"] for r in results["t3"]]
    assert all(found["cached"] is True for found in second.results["t3"])
    assert stand_ins.serpapi.requests == searches  # nothing new upstream
    stats = await cache_stats(client.redis, keyspace)
    assert stats["serpapi"]["hit"] == searches and stats["serpapi"]["upstream"] == searches
    status = await run("status", "--json", *at(redis_url, keyspace))
    rows = [orjson.loads(line) for line in status.out.splitlines()]
    assert {"provider": "serpapi", "hit": searches, "miss": searches, "upstream": searches} in rows


async def test_the_static_flow_searches_once_for_the_whole_flow(
    resolver_only: Engine, client: Client, stand_ins: Fakes, seed_workers: Callable[[], Daemon]
) -> None:
    seed_workers()
    state = await client.wait(await client.submit(WorkflowSpec.load(STATIC)), timeout=60)
    assert state.status == "completed", render_state(state)
    assert [t.id for t in state.tasks] == ["t1", "t2", "t3", "t4", "t5"]
    assert state.results["t3"]["query"] == (
        "Agentic system Execute the business flow and evaluate it"
    )
    assert state.results["t4"].startswith("Evaluated t3: ")
    assert stand_ins.serpapi.requests == 2  # t3's search and t5's


async def test_an_empty_search_has_t3_rerun_enhanced_and_only_t4_t5_after_it(
    resolver_only: Engine,
    client: Client,
    stand_ins: Fakes,
    seed_workers: Callable[[], Daemon],
) -> None:
    stand_ins.serpapi.script(Behaviour.EMPTY)  # the first search finds nothing
    seed_workers()
    state = await client.wait(await client.submit(WorkflowSpec.load(SEED)), timeout=60)
    assert state.status == "completed", render_state(state)
    tasks = {t.id: t for t in state.tasks}
    assert [tasks[t].attempt for t in ("t1", "t2", "t3", "t4", "t5")] == [1, 1, 2, 2, 2]
    (adjusted,) = [h for h in tasks["t3"].history if h["outcome"] == "adjusted"]
    assert adjusted["by"] == "t4"
    assert re.fullmatch(r"result of t3\[[0-2]\] is missing", adjusted["reason"])
    instances = [f"t3[{i}]" for i in range(len(FIXED_PLAN))]
    assert all(tasks[i].state == "done" for i in instances)  # mapped again, each enhanced
    assert searched(state) == [f"Agentic system {s} architecture examples" for s in FIXED_PLAN]
    assert all(found["results"] for found in state.results["t3"])
    assert state.results["t4"].startswith("Evaluated t3: ")


async def test_with_a_language_model_configured_three_agents_ask_it(
    resolver_only: Engine,
    client: Client,
    stand_ins: Fakes,
    worker_processes: Callable[..., Daemon],
) -> None:
    env = without_api_keys()
    worker_processes(AGENTS, env={**env, **stand_ins.env()})  # search and chat stand-ins
    state = await client.wait(await client.submit(WorkflowSpec.load(SEED)), timeout=60)
    assert state.status == "completed", render_state(state)
    assert stand_ins.llm.requests == 3  # description, planning, evaluation
    for task in ("t1", "t4"):
        assert not state.results[task].startswith(("Components:", "Evaluated"))
        assert state.results[task].strip()  # the stand-in's answer, not the fixed text
    assert state.results["t2"] == list(ANGLES)  # the model's plan, asked for as JSON
    assert searched(state) == [f"Agentic system {step}" for step in ANGLES]


@pytest.mark.parametrize(
    ("reply", "why"),
    [(Behaviour.OFF_FORMAT, "not JSON"), (Behaviour.EMPTY, "0 sub-queries, not 2 to 4")],
)
async def test_a_models_malformed_plan_is_logged_and_the_fixed_plan_runs(
    resolver_only: Engine,
    client: Client,
    stand_ins: Fakes,
    worker_processes: Callable[..., Daemon],
    reply: Behaviour,
    why: str,
) -> None:
    stand_ins.llm.script(Behaviour.NORMAL, reply)  # description's answer, then planning's
    worker = worker_processes(AGENTS, env={**without_api_keys(), **stand_ins.env()})
    state = await client.wait(await client.submit(WorkflowSpec.load(SEED)), timeout=60)
    assert state.status == "completed", render_state(state)
    assert state.results["t2"] == list(FIXED_PLAN)
    assert searched(state) == [f"Agentic system {step}" for step in FIXED_PLAN]
    log = await asyncio.to_thread(worker.log_text)
    assert f"t2: the model's plan is unusable ({why}" in log, log


async def test_api_keys_appear_nowhere_in_redis_or_logs(
    redis_server: EmbeddedRedis,
    resolver_only: Engine,
    client: Client,
    redis: Redis,
    keyspace: Keyspace,
    worker_processes: Callable[..., Daemon],
) -> None:
    canaries = {name: f"canary-{name}-{uuid.uuid4().hex}" for name in (*KEY_VARIABLES, "llm")}
    async with Fakes(keys=canaries, retry_after=0, stall=10.0) as fakes:
        # The searches run at once: every one must find serpapi's key refused (it must not
        # leak) and brave's quota spent.
        fakes.serpapi.behaviour = Behaviour.UNAUTHORIZED
        fakes.brave.behaviour = Behaviour.QUOTA_SPENT
        env = without_api_keys()
        worker = worker_processes(AGENTS, "-v", env={**env, **fakes.env()})
        state = await client.wait(await client.submit(WorkflowSpec.load(SEED)), timeout=60)
        assert state.status == "completed", render_state(state)
        assert {found["provider"] for found in state.results["t3"]} == {"tavily"}
    dump = []
    async for key in redis.scan_iter(match=f"*{keyspace.namespace}*"):
        dump.append(repr(await redis.dump(key)))
        kind = (await redis.type(key)).decode()
        if kind == "stream":
            dump.append(repr(await redis.xrange(key)))
        elif kind == "hash":
            dump.append(repr(await redis.hgetall(key)))
    worker.kill()
    log = await asyncio.to_thread(Path(worker.log.name).read_text)
    assert "key rejected" in log  # serpapi was refused, and said so
    # The append-only log as Redis wrote it (commands in RESP; the base file may compress).
    aof = b"".join(p.read_bytes() for p in (redis_server.data_dir / "appendonlydir").iterdir())
    assert keyspace.namespace.encode() in aof  # this run's writes are there to search
    for canary in canaries.values():
        assert canary not in log
        assert all(canary not in text for text in dump)
        assert canary.encode() not in aof


async def test_the_seed_workflow_replays_from_its_record_without_any_search(
    resolver_only: Engine,
    client: Client,
    keyspace: Keyspace,
    redis_url: str,
    stand_ins: Fakes,
    seed_workers: Callable[[], Daemon],
) -> None:
    seed_workers()
    original = await client.wait(await client.submit(WorkflowSpec.load(SEED)), timeout=60)
    assert original.status == "completed"
    searches = stand_ins.serpapi.requests
    result = await run("replay", "run", original.id, *at(redis_url, keyspace))
    assert result.code == 0, result
    assert f"no difference between {original.id} and " in result.out
    assert stand_ins.serpapi.requests == searches
