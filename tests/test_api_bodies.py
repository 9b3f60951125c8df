"""Minor findings of the API's hardening: hostile JSON bodies (duplicate keys, falsy ids,
integers past 64 bits) are refused with a 400 naming what is wrong, and replies carry headers
that keep browsers and caches from misreading them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from streamproc import Client
from streamproc.http.auth import ApiSettings
from tests.conftest import Engine, eventually
from tests.http_helpers import AUTH, TOKEN, Http, serving
from tests.test_waits import GATED as WAITING
from tests.test_waits import is_in

JSON = {"Content-Type": "application/json"}


@pytest.fixture
async def http(client: Client) -> AsyncIterator[Http]:
    async with serving(client, ApiSettings.with_tokens([TOKEN])) as test_client:
        yield test_client


async def post_raw(http: Http, body: bytes, **headers: str) -> tuple[int, Any]:
    response = await http.post("/workflows", data=body, headers={**AUTH, **JSON, **headers})
    return response.status, await response.json()


@pytest.mark.parametrize(
    "body",
    [
        b'{"tasks": [{"id": "a", "agent": "sleep", "agent": "echo"}]}',
        b'{"tasks": [], "tasks": [{"id": "a", "agent": "echo"}]}',
    ],
)
async def test_a_body_with_a_duplicate_key_is_refused_naming_the_key(
    http: Http, body: bytes
) -> None:
    status, reply = await post_raw(http, body)
    assert status == 400 and "duplicate key" in reply["error"], reply


@pytest.mark.parametrize("given", ["", 0, False, None, 1.5, []])
async def test_an_empty_or_falsy_id_in_the_body_is_refused_not_replaced(
    http: Http, given: object
) -> None:
    body = {"id": given, "tasks": [{"id": "a", "agent": "echo"}]}
    status, reply = await post_raw(http, orjson.dumps(body))
    assert status == 400 and "id" in reply["error"], reply


async def test_an_empty_body_id_does_not_override_the_idempotency_key(http: Http) -> None:
    body = orjson.dumps({"id": "", "tasks": [{"id": "a", "agent": "echo"}]})
    status, reply = await post_raw(http, body, **{"Idempotency-Key": "from-the-header"})
    assert status == 400, reply
    body = orjson.dumps({"tasks": [{"id": "a", "agent": "echo"}]})
    status, reply = await post_raw(http, body, **{"Idempotency-Key": ""})
    assert status == 400 and "Idempotency-Key" in reply["error"], reply
    status, reply = await post_raw(http, body, **{"Idempotency-Key": "a/b"})
    assert (status, reply["error"]) == (
        400,
        "invalid workflow id 'a/b' in the Idempotency-Key header: use 1-128 characters from "
        "A-Z a-z 0-9 _ . -",
    )


async def test_two_idempotency_keys_are_refused_naming_the_header_and_create_nothing(
    http: Http,
) -> None:
    """The first used to win silently: 201 with id k1, though the caller also said k2."""
    body = orjson.dumps({"tasks": [{"id": "a", "agent": "echo"}]})
    headers = [*AUTH.items(), *JSON.items(), ("Idempotency-Key", "k1"), ("Idempotency-Key", "k2")]
    response = await http.post("/workflows", data=body, headers=headers)
    reply = await response.json()
    assert (response.status, reply) == (
        400,
        {"error": "the Idempotency-Key header given 2 times: send one"},
    )
    assert (await http.get("/workflows/k1", headers=AUTH)).status == 404


async def test_a_signal_with_two_idempotency_keys_or_an_empty_body_is_refused(
    engine: Engine, client: Client, http: Http
) -> None:
    """Two keys would make either one the signal's id; an empty body was applied as null,
    where an empty spec is a 400.  A JSON ``null`` is still a payload, and the wait takes it."""
    workflow_id = await client.submit(WAITING)
    await eventually(lambda: is_in(client, workflow_id, "approve", "awaiting"))
    path = f"/workflows/{workflow_id}/signals/approval"
    keys = [("Idempotency-Key", "s1"), ("Idempotency-Key", "s2")]
    response = await http.post(path, data=b"1", headers=[*AUTH.items(), *JSON.items(), *keys])
    assert response.status == 400 and "Idempotency-Key" in (await response.json())["error"]
    response = await http.post(path, data=b"", headers={**AUTH, **JSON})
    reply = await response.json()
    assert response.status == 400 and "not valid JSON" in reply["error"], reply
    assert await is_in(client, workflow_id, "approve", "awaiting")
    response = await http.post(path, data=b"null", headers={**AUTH, **JSON})
    assert (response.status, (await response.json())["outcome"]) == (200, "applied")
    state = await client.wait(workflow_id, timeout=20)
    assert state.status == "completed" and state.results["approve"] is None


@pytest.mark.parametrize("number", [2**63, 2**64, -(2**63) - 1, 10**30])
async def test_an_integer_past_64_bits_is_refused_naming_its_field(http: Http, number: int) -> None:
    body = f'{{"tasks": [{{"id": "a", "agent": "echo", "input": {{"n": [{number}]}}}}]}}'
    status, reply = await post_raw(http, body.encode())
    assert status == 400 and "'n'" in reply["error"] and "64" in reply["error"], reply


async def test_the_largest_64_bit_integer_is_kept_exactly(
    engine: Engine, client: Client, http: Http
) -> None:
    body = f'{{"tasks": [{{"id": "a", "agent": "echo", "input": {2**63 - 1}}}]}}'
    status, reply = await post_raw(http, body.encode())
    assert status == 201, reply
    state = await client.wait(reply["id"], timeout=20)
    assert state.tasks[0].result == 2**63 - 1


async def test_replies_name_no_versions_forbid_sniffing_and_authenticated_json_is_not_stored(
    http: Http,
) -> None:
    agents = await http.get("/agents", headers=AUTH)
    health = await http.get("/healthz")
    refused = await http.get("/agents")
    for response in (agents, health, refused):
        assert response.headers["Server"] == "streamproc"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert agents.headers["Cache-Control"] == "no-store"
    assert refused.headers["Cache-Control"] == "no-store"


async def test_two_authorization_or_last_event_id_headers_are_refused_naming_the_header(
    client: Client, http: Http
) -> None:
    """The first was taken, where the caller may have meant the other."""
    twice = [*AUTH.items(), *AUTH.items()]
    response = await http.get("/agents", headers=twice)
    assert (response.status, await response.json()) == (
        400,
        {"error": "the Authorization header given 2 times: send one"},
    )
    workflow_id = await client.submit({"tasks": [{"id": "a", "agent": "echo"}]})
    resumed = [*AUTH.items(), ("Last-Event-ID", "0"), ("Last-Event-ID", "1-0")]
    response = await http.get(f"/workflows/{workflow_id}/events", headers=resumed)
    assert (response.status, await response.json()) == (
        400,
        {"error": "the Last-Event-ID header given 2 times: send one"},
    )
