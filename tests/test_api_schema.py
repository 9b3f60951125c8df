"""Security check 4 against the OpenAPI document: schemathesis generates requests for every
operation the served ``/openapi.json`` lists and sends them over TCP to the real API (the test
Redis, an engine running).

With an all-scope token, no answer is a 5xx and every answer conforms to the document: status,
content type, headers, body schema, and a 2xx is refused again without the token.  Requests
come from the document (valid data), from its negation (invalid data), and aimed at things
that exist (a completed workflow, a dead letter), so 200 and 409 replies are checked too.
With no token, or a made-up one, every operation but ``/healthz`` is a 401 with a bearer
challenge.

Schemathesis runs in a process of its own (``schema_probe.py``, which says why) while the
server serves on the test's event loop.  Generation is derandomized with a fixed budget per
operation and kind of case: a run is repeatable and takes seconds.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from streamproc import Client, Keyspace
from streamproc.http.app import serve
from streamproc.http.auth import ApiSettings
from streamproc.http.openapi import DOCUMENT
from streamproc.spec.model import TASK_KEYS, WORKFLOW_KEYS
from streamproc.testing.embedded import free_port
from tests.cli_runner import ROOT
from tests.conftest import Engine, eventually
from tests.http_helpers import AUTH, TOKEN, healthy

PROBE = "tests.schema_probe"
SPEC = {"tasks": [{"id": "only", "agent": "echo", "input": 1}]}  # as the probe's
OPERATIONS = 19  # in the document, /healthz included


@pytest.fixture
async def base(engine: Engine, client: Client) -> AsyncIterator[str]:
    """The API's address, served with an operator token until the test ends."""
    port, stop = free_port(), asyncio.Event()
    server = asyncio.create_task(serve(client, ApiSettings.with_tokens([TOKEN], port=port), stop))
    address = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await eventually(lambda: healthy(session, address))
        yield address
    finally:
        stop.set()
        await server


async def known_things(client: Client, redis: Redis, keyspace: Keyspace) -> dict[str, str]:
    """Path parameters naming what exists: a workflow submitted with :data:`SPEC`, completed
    (its event stream ends), and a raw dead letter (listed, shown, its requeue refused, then
    purged)."""
    workflow_id = await client.submit(SPEC)
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    raw = {"v": "1", "agent": "fixable", "entry": "1-1", "reason": "payload trimmed before ack"}
    entry_id = (await redis.xadd(keyspace.dead(0, "fixable"), raw)).decode()
    return {"id": workflow_id, "agent": "fixable", "entry_id": entry_id}


async def served_document(base: str) -> dict[str, Any]:
    """The document the API serves (schemathesis, loading it from its URL, would leave out
    the operation serving it)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base}/openapi.json", headers=AUTH) as response,
    ):
        assert response.status == 200
        document: dict[str, Any] = await response.json()
        return document


async def probe(mode: str, base: str, known: dict[str, str]) -> dict[str, set[int]]:
    """Run ``schema_probe.py`` in ``mode``; the statuses each operation answered."""
    job = {"base": base, "token": TOKEN, "document": await served_document(base), "known": known}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        PROBE,
        mode,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(orjson.dumps(job)), 100)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    return {label: set(statuses) for label, statuses in orjson.loads(out).items()}


async def test_with_a_token_no_operation_answers_5xx_and_every_answer_conforms(
    base: str, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    seen = await probe("conform", base, await known_things(client, redis, keyspace))
    assert len(seen) == OPERATIONS, seen
    assert all(status < 500 for statuses in seen.values() for status in statuses), seen
    # The checks ran on real answers, successes and refusals alike:
    assert {201, 200, 400} <= seen["POST /workflows"], seen
    assert {200, 400} <= seen["GET /workflows"], seen
    assert {200, 400, 404} <= seen["GET /workflows/{id}"], seen
    assert {200, 404} <= seen["GET /workflows/{id}/events"], seen
    assert {200, 404} <= seen["POST /workflows/{id}/cancel"], seen
    assert {200, 404} <= seen["GET /dead/{agent}/{entry_id}"], seen
    assert {409, 404} <= seen["POST /dead/{agent}/{entry_id}/requeue"], seen
    assert {200, 404} <= seen["DELETE /dead/{agent}/{entry_id}"], seen
    assert {200, 400} <= seen["POST /dead/{agent}/purge"], seen
    assert 200 in seen["GET /search"], seen


async def test_without_a_valid_token_every_operation_but_healthz_is_401(base: str) -> None:
    seen = await probe("anonymous", base, {})
    assert seen.pop("GET /healthz") == {200}
    assert len(seen) == OPERATIONS - 1, seen
    assert all(statuses == {401} for statuses in seen.values()), seen


def test_the_documents_spec_schema_names_every_key_a_spec_may_hold() -> None:
    """A client checking its body against the document must not refuse a spec the API
    takes (``additionalProperties`` is false)."""
    spec = DOCUMENT["components"]["schemas"]["Spec"]
    assert set(spec["properties"]) == WORKFLOW_KEYS | {"id"}
    assert set(spec["properties"]["tasks"]["items"]["properties"]) == TASK_KEYS
