"""Arguments packed in runs (store/packed.py): a submit's FCALL goes out byte for byte as
hiredis packs the same arguments one by one, for one workflow or several, with or without a
tenant, from a fresh shape or a cached one; and so does one packed from a frame
(store/submit_frame.py), with a drawn id or a given one of any length."""

from __future__ import annotations

from typing import Any

import hiredis
import pytest

from streamproc.client import Client
from streamproc.config import ClientSettings
from streamproc.store import calls, packed, submit_frame
from streamproc.store.fields import WorkflowField
from streamproc.store.keys import Keyspace
from streamproc.store.layout import layout


def one_task(n: int) -> dict[str, Any]:
    return {"name": "one", "tasks": [{"id": "t1", "agent": "noop", "input": {"n": n}}]}


def three_tasks(n: int) -> dict[str, Any]:
    return {
        "name": "three",
        "tasks": [
            {"id": "a", "agent": "lister", "input": f"é {n}", "retries": 2, "timeout": 9.5},
            {"id": "b", "agent": "worker", "input": [n, None], "needs": ["a"]},
            {"id": "c", "agent": "lister", "needs": ["a", "b"]},
        ],
    }


def one_by_one(pieces: list[packed.Piece]) -> bytes:
    """What the arguments were packed as before runs: each one by hiredis."""
    return hiredis.pack_command(tuple(calls.SUBMIT.command(packed.flat(pieces))))


@pytest.mark.parametrize("shards", [1, 3])
@pytest.mark.parametrize("quota", [calls.NO_TENANT, ["acme", 10, 2, 4096, 100]])
def test_a_submit_packs_as_its_arguments_one_by_one(shards: int, quota: list[Any]) -> None:
    client = Client("redis://127.0.0.1:1/0", ClientSettings(keyspace=Keyspace("t", shards)))
    for make in (one_task, three_tasks):
        items = [client._prepare(make(n)) for n in range(12)]  # the first misses the cache
        shard = client.keyspace.shard_of(items[2].workflow_id)
        same_shard = [i for i in items[2:] if client.keyspace.shard_of(i.workflow_id) == shard]
        for chunk in ([items[0]], [items[1]], same_shard):
            pieces = calls.submit_arguments(client.keyspace, chunk, quota)
            assert calls.submit_command(pieces) == one_by_one(pieces)
            shard = client.keyspace.shard_of(chunk[0].workflow_id)
            agents = sorted({a for item in chunk for a in item.blueprint.agents})
            ids = [item.workflow_id for item in chunk]
            args = [*quota]
            for item in chunk:
                args += (item.workflow_id, *item.blueprint.args)
            assert packed.flat(pieces) == layout(client.keyspace, shard, agents, ids, args)


@pytest.mark.parametrize("shards", [1, 3])
def test_a_submit_packed_from_a_frame_packs_as_its_arguments_one_by_one(shards: int) -> None:
    client = Client("redis://127.0.0.1:1/0", ClientSettings(keyspace=Keyspace("t", shards)))
    given = ["a", "wf-2", "x" * 24, "y" * 128, None, None, None]  # None: a drawn id
    for make in (one_task, three_tasks):
        for n, workflow_id in enumerate(given * 2):  # each frame made, then used again
            item = client._prepare(make(n), workflow_id)
            pieces = calls.submit_arguments(client.keyspace, [item])
            assert submit_frame.submit_command(client.keyspace, item) == one_by_one(pieces)


def test_every_kind_of_argument_packs_as_hiredis_packs_it() -> None:
    args: list[Any] = ["", "text", "é", b"\x00\r\n", 0, -7, 2**40, 0.5, WorkflowField.NAME]
    pieces: list[packed.Piece] = [packed.Packed.of(args[:3]), *args[3:], packed.Packed.of([])]
    assert packed.command(pieces) == hiredis.pack_command(tuple(args))
    assert packed.flat(pieces) == args
    assert all(packed.bulk(a) == hiredis.pack_command((a,))[4:] for a in args)
