"""The producer API offers what the README says: the async and sync clients have the same
calls, and a wait that runs out of time says which workflow is still doing what."""

from __future__ import annotations

import asyncio
import inspect
import re

import pytest

from streamproc import Client, ClientSettings, Keyspace, SyncClient, WorkflowSpec
from tests.cli_runner import ROOT
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
    assert history[-len(followed) :] == followed
