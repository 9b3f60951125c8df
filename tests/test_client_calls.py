"""The producer API offers what the README says: the async and sync clients have the same
calls, and a wait that runs out of time says which workflow is still doing what."""

from __future__ import annotations

import asyncio
import inspect
import re
import warnings
from pathlib import Path

import pytest

from streamproc import (
    Client,
    ClientSettings,
    ConfigError,
    Keyspace,
    Limits,
    RedisSettings,
    SpecError,
    SyncClient,
    WorkflowSpec,
)
from tests.cli_runner import ROOT, assert_one_line_error, at, run
from tests.conftest import Engine

CHAIN = WorkflowSpec.from_dict(
    {
        "tasks": [
            {"id": "a", "agent": "echo", "input": 1},
            {"id": "b", "agent": "echo", "input": 2, "needs": ["a"]},
        ]
    }
)


def public_calls(cls: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(cls, inspect.isfunction) if name[0] != "_"}


def test_the_sync_client_offers_every_call_of_the_async_client() -> None:
    assert public_calls(Client) - public_calls(SyncClient) == set()


def test_every_client_call_the_readme_names_exists_on_both_clients() -> None:
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"\b(?:Client|SyncClient|c)\.([a-z_]+)\(", readme))
    assert {"submit", "wait", "history", "cancel"} <= named
    assert named - public_calls(Client) == set()
    assert named - public_calls(SyncClient) == set()


async def test_a_wait_that_times_out_names_the_workflow_and_its_tasks(client: Client) -> None:
    workflow_id = await client.submit(CHAIN)  # no worker runs: a stays queued
    with pytest.raises(TimeoutError) as raised:
        await client.wait(workflow_id, timeout=0.2)
    assert str(raised.value) == (
        f"workflow {workflow_id} still running after 0.2s (tasks: a queued, b waiting)"
    )


def test_a_sync_wait_that_times_out_names_the_workflow_and_its_tasks(
    redis_url: str, keyspace: Keyspace
) -> None:
    with SyncClient(redis_url, ClientSettings(keyspace=keyspace)) as client:
        workflow_id = client.submit(CHAIN)
        with pytest.raises(TimeoutError, match=rf"^workflow {workflow_id} still running after"):
            client.wait(workflow_id, timeout=0.2)


async def test_the_sync_client_follows_a_workflow_and_reads_its_history(
    engine: Engine, redis_url: str, keyspace: Keyspace
) -> None:
    def follow_then_read() -> tuple[list[str], list[str]]:
        with SyncClient(redis_url, ClientSettings(keyspace=keyspace)) as client:
            workflow_id = client.submit(CHAIN)
            followed = [event["kind"] for event in client.follow(workflow_id)]
            return followed, [event["kind"] for event in client.history(workflow_id)]

    followed, history = await asyncio.wait_for(asyncio.to_thread(follow_then_read), 30)
    assert followed[-1] == "completed"
    assert history[0] == "submitted" and history[-1] == "completed"
    assert followed == history  # from its first kept event, by default


async def test_a_sync_client_inside_an_event_loop_says_to_use_client(redis_url: str) -> None:
    with pytest.raises(
        RuntimeError, match=r"^SyncClient cannot run inside an event loop: use Client"
    ):
        SyncClient(redis_url)


async def test_follow_right_after_submit_gets_every_event_and_dollar_only_new_ones(
    engine: Engine, client: Client
) -> None:
    workflow_id = await client.submit(CHAIN)
    kinds = [e["kind"] async for e in client.follow(workflow_id, output=False)]
    assert kinds[0] == "submitted" and kinds[-1] == "completed", kinds
    assert [e["kind"] async for e in client.follow(workflow_id, "$")] == []  # ended already


async def test_an_empty_workflow_id_is_refused_not_replaced_by_a_new_one(
    client: Client, redis_url: str, tmp_path: Path
) -> None:
    with pytest.raises(SpecError, match="invalid workflow id ''"):
        await client.submit(CHAIN, workflow_id="")
    with pytest.raises(SpecError, match="invalid workflow id ''"):
        await client.submit_many([(CHAIN, "")])
    spec = tmp_path / "one.yaml"
    spec.write_text("tasks: [{id: a, agent: description}]\n")
    result = await run("submit", str(spec), "--id", "", *at(redis_url, client.keyspace))
    assert_one_line_error(result, "error: invalid workflow id ''")


async def test_a_workflow_id_with_an_empty_tenant_or_own_part_is_refused(
    client: Client, redis_url: str, tmp_path: Path
) -> None:
    """``acme.`` would be tenant acme's empty id: listed to acme, opened by no route."""
    for bad in ("acme.", ".x", "."):
        with pytest.raises(SpecError, match=rf"invalid workflow id '{re.escape(bad)}': a '\.' in"):
            await client.submit(CHAIN, workflow_id=bad)
    assert await client.submit(CHAIN, workflow_id="acme.x.") == "acme.x."  # acme's ``x.``
    spec = tmp_path / "one.yaml"
    spec.write_text("tasks: [{id: a, agent: description}]\n")
    result = await run("submit", str(spec), "--id", "acme.", *at(redis_url, client.keyspace))
    assert_one_line_error(
        result,
        "error: invalid workflow id 'acme.': a '.' in it splits tenant from id, and neither "
        "may be empty",
    )


async def test_a_wait_with_no_time_left_returns_an_ended_workflow_and_refuses_bad_timeouts(
    engine: Engine, client: Client
) -> None:
    workflow_id = await client.submit(CHAIN)
    ended = await client.wait(workflow_id, timeout=20)
    assert (await client.wait(workflow_id, timeout=0)).status == ended.status == "completed"
    for bad in (-1, float("nan"), "5", True):
        with pytest.raises(ValueError, match=r"^timeout must be seconds, 0 or more, or None"):
            await client.wait(workflow_id, timeout=bad)  # type: ignore[arg-type]


async def test_more_concurrent_waits_than_redis_pys_default_pool_all_wait(client: Client) -> None:
    """Each wait holds a connection while it blocks; redis-py's pool caps at 100 by default
    and raised MaxConnectionsError at the 101st, so the client opens its pool wider."""
    gate = {"tasks": [{"id": "w", "wait_for": "go", "timeout": 60}]}
    ids = await client.submit_many([gate] * 150)
    waits = await asyncio.gather(*(client.wait(i, timeout=1) for i in ids), return_exceptions=True)
    assert {type(outcome) for outcome in waits} == {TimeoutError}, waits
    assert all("still running after 1s" in str(outcome) for outcome in waits)


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ({"limit": "5"}, "invalid limit '5': use a whole number from 1 to"),
        ({"name": 5}, "invalid name 5: a workflow's name is text"),
        ({"cursor": 123}, "invalid cursor 123: pass the one a page gave"),
        ({"since": 1.5}, "invalid since 1.5: use ms since the epoch, ISO-8601 or a datetime"),
    ],
    ids=["limit", "name", "cursor", "since"],
)
async def test_a_listing_asked_with_the_wrong_types_says_which(
    client: Client, given: dict[str, object], said: str
) -> None:
    """Each ended in a TypeError or AttributeError from deep inside the listing."""
    with pytest.raises(SpecError) as refused:
        await client.list(**given)  # type: ignore[arg-type]
    assert str(refused.value).startswith(said), refused.value


async def test_a_follow_cancel_or_settings_given_the_wrong_thing_say_which(client: Client) -> None:
    """Each ended in a ValueError, redis-py's DataError or a TypeError from a regex."""
    workflow_id = await client.submit(CHAIN)
    with pytest.raises(SpecError, match=r"^invalid start 'bogus': use 0, or an event's id"):
        async for _ in client.follow(workflow_id, start="bogus"):
            pass
    with pytest.raises(TypeError, match=r"^a cancel's reason is text, not None"):
        await client.cancel(workflow_id, reason=None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^a Redis URL is text"):
        RedisSettings.from_url(None)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match=r"^Limits.max_tasks must be a whole number of at least 1"):
        Limits(max_tasks=-1)


def test_a_client_given_the_wrong_agents_or_settings_says_which(redis_url: str) -> None:
    """A string of agents was taken letter by letter ('mar' passed as known in 'summarise');
    the others ended in a TypeError or AttributeError from deep inside."""
    for agents, said in [
        ("summarise", "agents is a collection of agent names, not 'summarise'"),
        (5, "agents is a collection of agent names, not 5"),
        (["a", 1], "agents is a collection of agent names (text), not ['a', 1]"),
    ]:
        with pytest.raises(TypeError) as refused:
            Client(redis_url, agents=agents)  # type: ignore[arg-type]
        assert str(refused.value) == said
    with pytest.raises(TypeError, match=r"^settings is a ClientSettings, not dict$"):
        Client(redis_url, {"durable": True})  # type: ignore[arg-type]


async def test_submit_many_given_no_list_or_a_bad_item_says_which(client: Client) -> None:
    for specs, said in [
        (None, "submit_many takes a list of specs, not NoneType"),
        ("abc", "submit_many takes a list of specs, not str"),
        ([(CHAIN, "an-id", 3)], "a submit_many item is a spec or a (spec, workflow id) pair"),
    ]:
        with pytest.raises(TypeError, match=f"^{re.escape(said)}"):
            await client.submit_many(specs)  # type: ignore[arg-type]


def test_a_closed_sync_client_closes_again_quietly_and_refuses_calls(
    redis_url: str, keyspace: Keyspace
) -> None:
    """The second close and a call after it raised 'Runner is closed' and warned of a
    coroutine never awaited."""
    client = SyncClient(redis_url, ClientSettings(keyspace=keyspace))
    client.close()
    client.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a "never awaited" warning fails the test
        with pytest.raises(RuntimeError, match=r"^this SyncClient is closed$"):
            client.get("any")
