"""map: a task runs once per item of one need's result, as instances ``<id>[i]``; the tasks
that need it receive the list of the instances' results, in order."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace, Limits, SpecError, WorkflowSpec
from streamproc.http.auth import ApiSettings
from streamproc.ops.history import snapshot
from streamproc.registry import registered
from streamproc.store.fields import WorkflowField
from streamproc.store.folded import hmget_many
from tests.conftest import Engine, eventually
from tests.http_helpers import AUTH, TOKEN, serving, sse_frames


def mapped(items: Any) -> dict[str, Any]:
    """plan returns ``items``; search maps over them; reduce needs search."""
    return {
        "tasks": [
            {"id": "plan", "agent": "echo", "input": items},
            {
                "id": "search",
                "agent": "echo",
                "map": "plan",
                "input": {"k": "v"},
                "needs": ["plan"],
            },
            {"id": "reduce", "agent": "echo", "needs": ["search"]},
        ]
    }


async def test_a_mapped_task_runs_once_per_item_and_fans_in_their_results_in_order(
    engine: Engine, client: Client, redis: Redis
) -> None:
    state = await client.wait(await client.submit(mapped(["a", "b", "c"])), timeout=20)
    assert state.status == "completed"
    tasks = {t.id: t for t in state.tasks}
    instances = ["search[0]", "search[1]", "search[2]"]
    assert [t.id for t in state.tasks] == ["plan", "search", "reduce", *instances]
    assert all(tasks[i].spawner == "search" and tasks[i].needs == ["plan"] for i in instances)
    assert tasks["search"].map == "plan"
    assert state.results["search[1]"] == {
        "input": {"item": "b", "k": "v"},
        "deps": {"plan": ["a", "b", "c"]},
    }
    assert state.results["search"] == [state.results[i] for i in instances]
    assert state.results["reduce"]["deps"] == {"search": state.results["search"]}
    history = (await snapshot(redis, client.keyspace, state.id)).history
    spawned = [f for _, f in history if f[b"kind"] == b"tasks_spawned"]
    assert [(f[b"task"], f[b"tasks"]) for f in spawned] == [
        (b"search", " ".join(instances).encode())
    ]


async def test_a_map_over_no_items_is_done_with_an_empty_list(
    engine: Engine, client: Client
) -> None:
    state = await client.wait(await client.submit(mapped([])), timeout=20)
    assert state.status == "completed"
    assert state.results["search"] == []
    assert state.results["reduce"]["deps"] == {"search": []}
    assert [t.id for t in state.tasks] == ["plan", "search", "reduce"]


@pytest.mark.parametrize("reduce_first", [False, True])
async def test_a_map_done_at_once_and_its_sibling_both_count_toward_a_fan_in(
    engine: Engine, client: Client, reduce_first: bool
) -> None:
    """plan's completion publishes an empty map, which is done within that step and counts
    toward reduce, which needs plan too: reduce runs once, whichever of the two plan's
    completion counts first."""
    spec = mapped([])
    spec["tasks"][2]["needs"] = ["plan", "search"]
    if reduce_first:
        spec["tasks"][1:] = spec["tasks"][:0:-1]
    state = await client.wait(await client.submit(spec), timeout=20)
    assert state.status == "completed"
    assert state.results["reduce"]["deps"] == {"plan": [], "search": []}
    assert {t.id: t.attempt for t in state.tasks} == {"plan": 1, "search": 1, "reduce": 1}


async def test_items_reach_the_instances_exactly_as_written(engine: Engine, client: Client) -> None:
    items = [9007199254740993, 9223372036854775807, 0.1, {"deep": [1, [2, "]"]]}, '"{,\\']
    state = await client.wait(await client.submit(mapped(items)), timeout=20)
    assert state.status == "completed"
    assert [r["input"]["item"] for r in state.results["search"]] == items


async def test_a_map_over_what_is_not_a_list_or_too_long_fails_the_task(
    engine: Engine, redis_url: str, keyspace: Keyspace, redis: Redis
) -> None:
    settings = ClientSettings(keyspace=keyspace, limits=Limits(max_map=2))
    async with Client(redis_url, settings, agents=registered()) as client:
        for items, reason in [
            ({"a": 1}, "map over plan: its result is not a list"),
            (None, "map over plan: its result is not a list"),
            ([1, 2, 3], "map over plan: 3 items, over the limit of 2"),
        ]:
            state = await client.wait(await client.submit(mapped(items)), timeout=20)
            assert state.status == "failed"
            assert state.reason == f"task search dead-lettered: {reason}"
            assert [t.id for t in state.tasks] == ["plan", "search", "reduce"]
            [(_, dead)] = await redis.xrange(keyspace.dead(0, "echo"))
            assert dead[b"reason"] == reason.encode()
            await redis.delete(keyspace.dead(0, "echo"))


def test_map_is_read_from_yaml_and_json_and_checked() -> None:
    yaml_spec = WorkflowSpec.from_yaml(
        "tasks:\n- {id: plan, agent: echo}\n- {id: s, agent: echo, map: plan, needs: [plan]}\n"
    )
    json_spec = WorkflowSpec.from_json(
        '{"tasks": [{"id": "plan", "agent": "echo"},'
        ' {"id": "s", "agent": "echo", "map": "plan", "needs": ["plan"]}]}'
    )
    assert yaml_spec == json_spec and yaml_spec.tasks[1].map == "plan"
    assert json_spec.validate() == ["plan", "s"]
    assert yaml_spec.digest() != WorkflowSpec(yaml_spec.tasks[:1]).digest()
    bad = [
        ({"map": "other", "needs": ["plan"]}, "'map' must name one of its needs"),
        ({"map": "plan", "needs": ["plan"], "input": [1]}, "input must be a mapping"),
        ({"map": "plan", "needs": ["plan"], "input": {"item": 1}}, "without 'item'"),
    ]
    for extra, message in bad:
        spec = WorkflowSpec.from_dict(
            {"tasks": [{"id": "plan", "agent": "echo"}, {"id": "s", "agent": "echo", **extra}]}
        )
        with pytest.raises(SpecError, match=message):
            spec.validate()


async def test_the_http_api_takes_map_and_shows_the_instances(
    engine: Engine, client: Client
) -> None:
    async with serving(client, ApiSettings.with_tokens([TOKEN])) as http:
        response = await http.post("/workflows", json=mapped([1, 2]), headers=AUTH)
        assert response.status == 201, await response.text()
        workflow_id = (await response.json())["id"]

        async def completed() -> Any:
            state = await (await http.get(f"/workflows/{workflow_id}", headers=AUTH)).json()
            return state if state["status"] == "completed" else None

        state = await eventually(completed)
        tasks = {t["id"]: t for t in state["tasks"]}
        assert (tasks["search"]["map"], tasks["search[1]"]["spawner"]) == ("plan", "search")
        path = f"/workflows/{workflow_id}/tasks/{quote('search[1]')}/result"
        result = await (await http.get(path, headers=AUTH)).json()
        assert result["input"] == {"item": 2, "k": "v"}
        events = await http.get(f"/workflows/{workflow_id}/events", headers=AUTH)
        async with asyncio.timeout(20):
            frames = sse_frames(await events.text())
        [spawned] = [orjson.loads(f["data"]) for f in frames if f["event"] == "tasks_spawned"]
        assert (spawned["task"], spawned["tasks"]) == ("search", "search[0] search[1]")


async def test_adjusting_what_a_map_maps_over_supersedes_its_instances_and_maps_again(
    engine: Engine, client: Client
) -> None:
    spec = mapped(["a", "b", "c"])
    spec["tasks"][1] |= {"agent": "writer", "input": {"text": "short"}}
    spec["tasks"][2] = {
        "id": "reduce",
        "agent": "judge",
        "input": {"adjust": {"plan": ["x", "y"]}},
        "needs": ["search"],
    }
    state = await client.wait(await client.submit(spec), timeout=20)
    assert state.status == "completed", state.reason
    tasks = {t.id: t for t in state.tasks}
    assert [t.id for t in state.tasks] == [
        "plan", "search", "reduce", "search[0]", "search[1]", "search[2]",
    ]  # fmt: skip
    assert state.results["search"] == ["short", "short"]  # one per item of ["x", "y"]
    assert (tasks["search[0]"].attempt, tasks["search[2]"].state) == (2, "superseded")
    assert state.results["reduce"] == "weak"  # its second round was refused: the limit is 1
    assert tasks["search"].needs == ["plan", "search[0]", "search[1]"]
    [[edges]] = await hmget_many(client.redis, client.keyspace, [(state.id, [WorkflowField.EDGES])])
    assert int(edges) == sum(len(t.needs) for t in state.tasks if t.state != "superseded")


async def test_a_map_that_ends_at_once_publishes_its_dependents_whatever_their_agent(
    engine: Engine, redis_url: str, keyspace: Keyspace
) -> None:
    """No items: the mapped task is done in the step that applies its need, and publishes its
    dependents there, whose agent (one the running resolver has never routed) needs keys."""
    async with Client(redis_url, ClientSettings(keyspace=keyspace)) as client:
        warm = await client.wait(await client.submit(mapped([1])), timeout=20)
        assert warm.status == "completed"  # the resolver runs, its agents loaded
        spec = mapped([])
        spec["tasks"][2]["agent"] = "manual"
        workflow_id = await client.submit(spec)
        await eventually(lambda: _state_is(client, workflow_id, "reduce", "queued"))
        state = await client.get(workflow_id)
    assert state.results == {"plan": [], "search": []}


async def _state_is(client: Client, workflow_id: str, task: str, state: str) -> bool:
    return {t.id: t.state for t in (await client.get(workflow_id)).tasks}[task] == state


async def test_adjusting_what_an_empty_map_mapped_over_maps_the_new_result(
    engine: Engine, client: Client
) -> None:
    spec = mapped([])
    spec["tasks"][1] |= {"agent": "writer", "input": {"text": "short"}}
    spec["tasks"][2] = {
        "id": "reduce",
        "agent": "judge",
        "input": {"adjust": {"plan": ["x"]}},
        "needs": ["search"],
    }
    state = await client.wait(await client.submit(spec), timeout=20)
    assert state.status == "completed", state.reason
    assert state.results["search"] == ["short"]  # one instance, for the adjusted plan's item
