"""Security check V2 (per-tenant limits): a tenant past its workflows in flight or its bytes
stored gets 429 with ``Retry-After`` and a one-line reason; other tenants and operators go on;
an ended workflow stops counting in flight, and its bytes once its retention passes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from streamproc import (
    Client,
    ClientSettings,
    Keyspace,
    PermanentError,
    RedisSettings,
    SyncClient,
    Task,
)
from streamproc.engine.worker import Worker
from streamproc.errors import LimitReached
from streamproc.http.app import make_app
from streamproc.http.auth import ApiSettings
from streamproc.http.tokens import parse_entry
from streamproc.ops import deadletters
from streamproc.registry import registered
from streamproc.store.tenants import Quota, usage
from tests.conftest import Engine, eventually, fast_worker
from tests.http_helpers import GATED, Http

ACME, GLOBEX, OPERATOR = "acme-limits-token-0001", "globex-limits-token-01", "ops-limits-token-0001"
ECHO = {"tasks": [{"id": "only", "agent": "echo", "input": "x" * 2000}]}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def settings(**limits: int) -> ApiSettings:
    entries = [f"{ACME} tenant=acme", f"{GLOBEX} tenant=globex", OPERATOR]
    credentials = [parse_entry(entry, f"entry {i}") for i, entry in enumerate(entries)]
    return ApiSettings.with_credentials(credentials, **limits)


@pytest.fixture(params=[1, 3], ids=["one-shard", "three-shards"])
async def sharded(request: pytest.FixtureRequest, redis_url: str, keyspace: Keyspace) -> Client:
    ks = Keyspace(keyspace.namespace, shards=request.param)
    return Client(redis_url, ClientSettings(keyspace=ks, workflow_ttl=1.0))


@pytest.fixture
async def api(sharded: Client) -> AsyncIterator[Http]:
    async with (
        sharded,
        TestClient(TestServer(make_app(sharded, settings(max_workflows_per_tenant=2)))) as http,
    ):
        yield http


async def post(http: Http, token: str, spec: object, workflow_id: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    response = await http.post(
        "/workflows", json={**spec, "id": workflow_id}, headers=bearer(token)
    )  # type: ignore[dict-item]
    return response.status, {**await response.json(), "retry": response.headers.get("Retry-After")}


async def test_a_tenant_past_its_workflows_in_flight_gets_429_until_one_ends(api: Http) -> None:
    for number in range(2):
        assert (await post(api, ACME, GATED, f"w{number}"))[0] == 201
    status, body = await post(api, ACME, GATED, "w2")
    assert status == 429, body
    assert body["error"] == "tenant acme has 2 workflows in flight, the limit is 2"
    assert int(body["retry"]) > 0
    assert (await post(api, ACME, GATED, "w0"))[0] == 200  # the same submit again: no new one
    assert (await post(api, GLOBEX, GATED, "w0"))[0] == 201  # another tenant goes on
    assert (await post(api, OPERATOR, GATED, "ops-1"))[0] == 201  # operators are never limited
    cancelled = await api.post("/workflows/w1/cancel", headers=bearer(ACME))
    assert (await cancelled.json()) == {"cancelled": True}
    assert (await post(api, ACME, GATED, "w2"))[0] == 201


async def test_a_completed_workflow_stops_counting_in_flight(
    sharded: Client, redis_url: str
) -> None:
    engine = Engine(redis_url, sharded.keyspace)
    engine.start_resolver()
    engine.start_worker(("echo",))
    try:
        async with (
            sharded,
            TestClient(
                TestServer(
                    make_app(sharded, settings(max_workflows_per_tenant=1), registry=registered())
                )
            ) as http,
        ):
            assert (await post(http, ACME, ECHO, "first"))[0] == 201

            async def admitted() -> bool:
                return (await post(http, ACME, ECHO, "second"))[0] == 201

            await eventually(admitted, timeout=10)
    finally:
        await engine.stop()


async def test_a_tenant_past_its_bytes_stored_gets_429_until_retention_passes(
    sharded: Client, redis_url: str
) -> None:
    engine = Engine(redis_url, sharded.keyspace)
    engine.start_resolver()
    engine.start_worker(("echo",))
    try:
        async with (
            sharded,
            TestClient(
                TestServer(
                    make_app(sharded, settings(max_bytes_per_tenant=6000), registry=registered())
                )
            ) as http,
        ):
            assert (await post(http, ACME, ECHO, "first"))[0] == 201

            async def completed() -> bool:
                return (await sharded.get("acme.first")).status == "completed"

            await eventually(completed, timeout=10)
            status, body = await post(http, ACME, ECHO, "second")
            assert status == 429, body
            assert re.fullmatch(
                r"tenant acme stores \d+ bytes of inputs and results; "
                r"this workflow's \d+ would pass the limit of 6000",
                body["error"],
            ), body
            assert (await post(http, GLOBEX, ECHO, "second"))[0] == 201

            async def admitted() -> bool:  # "first" expires 1 s after it completed
                return (await post(http, ACME, ECHO, "second"))[0] == 201

            await eventually(admitted, timeout=10)
    finally:
        await engine.stop()


async def test_no_limit_at_zero(sharded: Client) -> None:
    async with (
        sharded,
        TestClient(
            TestServer(
                make_app(sharded, settings(max_workflows_per_tenant=0, max_bytes_per_tenant=0))
            )
        ) as http,
    ):
        for number in range(4):
            assert (await post(http, ACME, GATED, f"z{number}"))[0] == 201


MENDED: set[str] = set()
RELEASE = asyncio.Event()


async def mendable(task: Task) -> Any:
    """Fails for good until its workflow is in ``MENDED``; then holds until ``RELEASE``, so
    the test reads what is in flight while the revived task runs."""
    if task.workflow not in MENDED:
        raise PermanentError("not mended yet")
    await RELEASE.wait()
    return task.input


async def test_a_revived_workflow_counts_in_flight_again_until_it_ends(
    redis_url: str, redis: Redis, keyspace: Keyspace
) -> None:
    engine = Engine(redis_url, keyspace)
    engine.start_resolver()
    worker = fast_worker(keyspace, ("mendable",))
    engine.tasks.append(
        asyncio.create_task(
            Worker(RedisSettings.from_url(redis_url), worker, {"mendable": mendable}).run(
                engine.stop_event
            )
        )
    )
    quota = Quota("acme", max_workflows=1)
    in_flight = [0]
    try:
        async with Client(redis_url, ClientSettings(keyspace=keyspace)) as client:
            spec = {"tasks": [{"id": "a", "agent": "mendable", "input": 1}]}
            await client.create(spec, "acme.mend", quota)
            assert (await client.wait("acme.mend", timeout=10)).status == "failed"
            assert (await usage(redis, keyspace, "acme", [0])).workflows == 0
            MENDED.add("acme.mend")
            [dead] = await deadletters.list_dead(redis, keyspace, "mendable")
            await deadletters.requeue(redis, keyspace, "mendable", dead.entry_id)
            in_flight[0] = (await usage(redis, keyspace, "acme", [0])).workflows
            RELEASE.set()
            assert (await client.wait("acme.mend", timeout=10)).status == "completed"
            assert (await usage(redis, keyspace, "acme", [0])).workflows == 0
    finally:
        await engine.stop()
    assert in_flight == [1]


def test_the_sync_client_submits_for_a_tenant_within_its_limits(
    redis_url: str, keyspace: Keyspace
) -> None:
    quota = Quota("acme", max_workflows=1)
    with SyncClient(redis_url, ClientSettings(keyspace=keyspace)) as client:
        assert client.create(GATED, "acme.one", quota) == ("acme.one", True)
        with pytest.raises(
            LimitReached, match=r"^tenant acme has 1 workflow in flight, the limit is 1$"
        ):
            client.create(GATED, "acme.two", quota)
