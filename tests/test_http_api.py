"""The HTTP API: callers submit, read, follow and cancel workflows, see agents and dead letters
and requeue them, with bearer tokens, over aiohttp's test server against the real Redis."""

from __future__ import annotations

import asyncio
import io
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from streamproc import Client, Keyspace, RedisSettings
from streamproc.errors import ConfigError
from streamproc.http.app import make_app, serve
from streamproc.http.auth import ApiSettings
from streamproc.http.dashboard import DASHBOARD_NEEDS
from streamproc.http.errors import UNAVAILABLE
from streamproc.http.tokens import parse_tokens
from streamproc.testing.embedded import free_port
from tests.cli_runner import STATUS_KEYS, STREAMPROC, at, cli_env, run_sync
from tests.conftest import Engine, eventually, some_task
from tests.http_helpers import AUTH, CHAIN, GATED, TOKEN, Http, healthy, serving, sse_frames

FIXABLE = {"tasks": [{"id": "fix", "agent": "fixable", "retries": 0}]}


@pytest.fixture
async def http(client: Client) -> AsyncIterator[Http]:
    async with serving(client, ApiSettings.with_tokens([TOKEN])) as test_client:
        yield test_client


async def post_json(http: Http, path: str, body: Any, **headers: str) -> tuple[int, Any]:
    response = await http.post(
        path,
        data=orjson.dumps(body),
        headers={**AUTH, **headers, "Content-Type": "application/json"},
    )
    return response.status, await response.json()


async def get_json(http: Http, path: str) -> tuple[int, Any]:
    response = await http.get(path, headers=AUTH)
    return response.status, await response.json()


async def kept_kinds(redis: Redis, keyspace: Keyspace, workflow_id: str) -> list[str]:
    """The workflow's event kinds in the shard's events stream, in order."""
    entries = await redis.xrange(keyspace.events(keyspace.shard_of(workflow_id)))
    return [f[b"kind"].decode() for _, f in entries if f[b"wf"] == workflow_id.encode()]


# -- workflows -------------------------------------------------------------------------------


async def test_a_submitted_workflow_is_201_and_reads_back_until_it_completes(
    engine: Engine, http: Http
) -> None:
    status, body = await post_json(http, "/workflows", CHAIN)
    assert status == 201 and set(body) == {"id"}, body

    async def completed() -> Any:
        status, state = await get_json(http, f"/workflows/{body['id']}")
        assert status == 200, state
        return state if state["status"] == "completed" else None

    state = await eventually(completed)
    assert (state["id"], state["name"]) == (body["id"], "chain")
    assert [(t["id"], t["state"], t["result"]) for t in state["tasks"]] == [
        ("first", "done", 1),
        ("second", "done", {"input": 2, "deps": {"first": 1}}),
    ]


async def test_resubmitting_an_id_with_its_spec_is_200_and_with_another_spec_409(
    http: Http,
) -> None:
    named = {**CHAIN, "id": "nightly-1"}
    first = await post_json(http, "/workflows", named)
    again = await post_json(http, "/workflows", named)
    assert (first, again) == ((201, {"id": "nightly-1"}), (200, {"id": "nightly-1"}))
    other = {"tasks": [{"id": "only", "agent": "echo"}], "id": "nightly-1"}
    status, body = await post_json(http, "/workflows", other)
    assert status == 409 and "already exists with a different spec" in body["error"], body


async def test_the_idempotency_key_header_names_the_workflow_when_the_body_does_not(
    http: Http,
) -> None:
    first = await post_json(http, "/workflows", CHAIN, **{"Idempotency-Key": "order-42"})
    again = await post_json(http, "/workflows", CHAIN, **{"Idempotency-Key": "order-42"})
    assert (first, again) == ((201, {"id": "order-42"}), (200, {"id": "order-42"}))
    assert (await get_json(http, "/workflows/order-42"))[0] == 200


async def test_an_idempotency_key_that_differs_from_the_body_id_is_a_400(http: Http) -> None:
    named = {**CHAIN, "id": "k2"}
    status, body = await post_json(http, "/workflows", named, **{"Idempotency-Key": "k1"})
    assert (status, body) == (
        400,
        {"error": "the Idempotency-Key header 'k1' and the body's id 'k2' differ: send one"},
    )
    assert (await get_json(http, "/workflows/k2"))[0] == 404  # nothing was submitted
    agreed = await post_json(http, "/workflows", named, **{"Idempotency-Key": "k2"})
    assert agreed == (201, {"id": "k2"})


async def test_a_created_workflow_answers_with_its_location_and_a_resubmit_without(
    http: Http,
) -> None:
    for spec, location in [({**CHAIN, "id": "night.1"}, "/workflows/night.1"), (CHAIN, None)]:
        response = await http.post("/workflows", json=spec, headers=AUTH)
        assert response.status == 201
        given = (await response.json())["id"]
        assert response.headers["Location"] == (location or f"/workflows/{given}")
        again = await http.post("/workflows", json={**spec, "id": given}, headers=AUTH)
        assert again.status == 200 and "Location" not in again.headers
        assert (await http.get(response.headers["Location"], headers=AUTH)).status == 200


async def test_a_bad_spec_is_a_400_naming_the_task(http: Http) -> None:
    spec = {
        "tasks": [{"id": "a", "agent": "echo"}, {"id": "b", "agent": "echo", "needs": ["nope"]}]
    }
    status, body = await post_json(http, "/workflows", spec)
    assert status == 400 and body["task"] == "b", body
    assert "nope" in body["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"tasks": 3}', "'tasks' must be a list of tasks"),
        (b'{"tasks": [1]}', "task #0 must be a mapping"),
        (b'{"tasks": [{"id": 5, "agent": "echo"}]}', "invalid task id 5"),
        (b'{"tasks": [{"id": "a", "agent": "echo", "needs": [{}]}]}', "'needs' must be a list"),
        (b'{"tasks": [{"id": "a", "agent": "echo"}], "id": "no spaces"}', "invalid workflow id"),
        (b'{"tasks": [{"id": "a", "agent": "echo"}], "id": 7}', "invalid workflow id"),
        (b'{"tasks": [{"id": "a", "agent": "echo"}], "extra": 1}', "unknown workflow keys"),
    ],
)
async def test_malformed_submissions_are_400s_that_say_why(
    http: Http, body: bytes, message: str
) -> None:
    response = await http.post(
        "/workflows", data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status == 400, await response.text()
    assert message in (await response.json())["error"]


async def test_a_body_that_is_not_json_is_415(http: Http) -> None:
    response = await http.post(
        "/workflows", data=b"tasks: []", headers={**AUTH, "Content-Type": "application/yaml"}
    )
    assert response.status == 415
    assert (await response.json())["error"] == "send the workflow spec as application/json"


async def test_a_body_over_the_limit_is_413_before_it_is_parsed(http: Http) -> None:
    big = b'{"tasks": [' + b" " * (2 << 20) + b"]}"
    response = await http.post(
        "/workflows", data=io.BytesIO(big), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status == 413
    assert await response.json() == {"error": f"body of {len(big)} bytes is over 1048576"}

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while reading
        for _ in range(32):
            yield b" " * 65536

    response = await http.post(
        "/workflows", data=chunks(), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status == 413, await response.text()
    assert "Maximum request body size 1048576 exceeded" in (await response.json())["error"]


async def test_ids_are_validated_and_unknown_workflows_are_404(http: Http) -> None:
    status, body = await get_json(http, "/workflows/bad%20id")
    assert status == 400 and "invalid workflow id" in body["error"], body
    assert await get_json(http, "/workflows/missing") == (
        404,
        {"error": "workflow 'missing' not found"},
    )
    status, body = await post_json(http, "/workflows/missing/cancel", None)
    assert status == 404, body
    assert (await http.get("/workflows/missing/events", headers=AUTH)).status == 404
    response = await http.get("/nowhere", headers=AUTH)
    assert (response.status, await response.json()) == (404, {"error": "Not Found"})
    response = await http.delete("/workflows/x", headers=AUTH)
    assert response.status == 405 and "GET" in response.headers["Allow"]


# -- auth ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing bearer token"),
        ({"Authorization": "Basic dXNlcjpwdw=="}, "missing bearer token"),
        ({"Authorization": "Bearer wrong-token-of-some-length"}, "invalid bearer token"),
        ({"Authorization": f"Bearer {TOKEN}x"}, "invalid bearer token"),
    ],
)
async def test_a_missing_or_wrong_token_is_401_with_a_bearer_challenge(
    http: Http, headers: dict[str, str], message: str
) -> None:
    for method, path in [("GET", "/agents"), ("POST", "/workflows"), ("GET", "/openapi.json")]:
        response = await http.request(method, path, headers=headers)
        assert response.status == 401, (path, await response.text())
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert await response.json() == {"error": message}
    health = await http.get("/healthz", headers=headers)
    assert (health.status, await health.json()) == (200, {"ok": True})


async def test_tokens_from_the_environment_and_a_file_each_open_the_api(
    client: Client, tmp_path: Path
) -> None:
    tokens = ["env-token-0123456789", "other-token-0123456789", "file-token-0123456789"]
    (tmp_path / "tokens").write_text(f"# operators\n{tokens[2]}\n\n")
    credentials = parse_tokens(f"{tokens[0]}, {tokens[1]},", ",", "env")
    credentials += parse_tokens((tmp_path / "tokens").read_text(), "\n", "file")
    settings = ApiSettings.with_credentials(credentials)
    assert len(settings.credentials) == 3
    assert not any(token in repr(settings) for token in tokens)  # only digests are kept
    async with serving(client, settings) as http:
        for token in tokens:
            response = await http.get("/agents", headers={"Authorization": f"bearer {token}"})
            assert response.status == 200, token
        assert (await http.get("/agents", headers=AUTH)).status == 401


def test_without_tokens_only_a_loopback_host_may_be_served() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        ApiSettings(host=host).check_bind()
    for host in ("0.0.0.0", "::", "", "10.1.2.3", "example.com"):  # noqa: S104
        with pytest.raises(
            ConfigError, match=f"refusing to serve the API on '{host}' without tokens"
        ):
            ApiSettings(host=host).check_bind()
        ApiSettings.with_tokens([TOKEN], host=host).check_bind()
    with pytest.raises(ConfigError, match="at least 16 characters"):
        ApiSettings.with_tokens(["short"])


async def test_without_tokens_a_loopback_server_needs_none(engine: Engine, client: Client) -> None:
    async with serving(client, ApiSettings()) as http:
        response = await http.post("/workflows", json=CHAIN)
        assert response.status == 201, await response.text()


def test_the_api_verb_refuses_a_public_host_without_tokens() -> None:
    result = run_sync("api", "--host", "0.0.0.0")  # noqa: S104
    assert result.code == 1, result
    assert result.err.startswith("error: refusing to serve the API on '0.0.0.0' without tokens")


async def test_the_api_verb_serves_with_a_token_until_sigterm(
    redis_url: str, keyspace: Keyspace
) -> None:
    port = free_port()
    env = {**cli_env(), "STREAMPROC_API_TOKENS": TOKEN}
    process = await asyncio.create_subprocess_exec(
        str(STREAMPROC),
        "api",
        "--port",
        str(port),
        *at(redis_url, keyspace),
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await eventually(lambda: healthy(session, base))
            async with session.get(f"{base}/agents") as response:
                assert response.status == 401
            async with session.get(f"{base}/agents", headers=AUTH) as response:
                assert response.status == 200
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
        assert process.stderr is not None
        assert (
            f"serving the HTTP API on http://127.0.0.1:{port} (1 token(s))"
            in (await process.stderr.read()).decode()
        )
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_an_unreachable_redis_is_a_503() -> None:
    down = Client(RedisSettings(url="redis://127.0.0.1:1/0", command_retries=0))
    try:
        async with serving(down, ApiSettings()) as http:
            for path in ("/workflows/anything", "/agents", "/dead/echo"):
                response = await http.get(path)
                body = await response.json()
                # The cause names Redis's address: logged, never told a caller (a tenant).
                assert (response.status, body) == (503, {"error": UNAVAILABLE})
            response = await http.post("/workflows", json=CHAIN)
            assert response.status == 503
    finally:
        await down.close()


# -- events and cancel -----------------------------------------------------------------------


async def test_a_late_subscriber_gets_the_workflows_events_in_order_ending_with_completed(
    engine: Engine, client: Client, http: Http, redis: Redis, keyspace: Keyspace
) -> None:
    workflow_id = await client.submit(CHAIN)
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    other = await client.submit(CHAIN)  # another workflow's events are left out
    response = await http.get(f"/workflows/{workflow_id}/events", headers=AUTH)
    assert response.status == 200 and response.content_type == "text/event-stream"
    async with asyncio.timeout(20):
        frames = sse_frames(await response.text())
    assert [f["event"] for f in frames] == await kept_kinds(redis, keyspace, workflow_id)
    assert frames[0]["event"] == "submitted" and frames[-1]["event"] == "completed"
    ids = [tuple(map(int, f["id"].split("-"))) for f in frames]
    assert ids == sorted(set(ids))  # each frame names its entry, for Last-Event-ID
    assert all(orjson.loads(f["data"])["wf"] == workflow_id for f in frames)
    assert (await client.wait(other, timeout=20)).status == "completed"

    resumed = await http.get(
        f"/workflows/{workflow_id}/events", headers={**AUTH, "Last-Event-ID": frames[1]["id"]}
    )
    async with asyncio.timeout(20):
        assert sse_frames(await resumed.text()) == frames[2:]
    bad = await http.get(f"/workflows/{workflow_id}/events", headers={**AUTH, "Last-Event-ID": "x"})
    assert bad.status == 400


async def test_an_event_stream_runs_past_the_final_event_until_its_started_tasks_end(
    engine: Engine, client: Client, http: Http, redis: Redis
) -> None:
    """A task running when its workflow fails runs on (its result is recorded): the stream
    that a dashboard draws from ends once it has, not at ``failed``."""
    spec = {"tasks": [{"id": "slow", "agent": "gate"}, {"id": "broken", "agent": "fatal"}]}
    workflow_id = await client.submit(spec)
    response = await http.get(f"/workflows/{workflow_id}/events", headers=AUTH)
    seen: list[str] = []
    async with asyncio.timeout(20):
        while "failed" not in seen:
            line = (await response.content.readline()).decode()
            assert line, f"the stream ended after {seen}"
            if line.startswith("event: "):
                seen.append(line.removeprefix("event: ").strip())
        await redis.rpush(f"open:{workflow_id}:slow", "go")
        rest = [f["event"] for f in sse_frames(await response.text()) if "event" in f]
    assert rest[-1] == "task_done", (seen, rest)
    assert (await client.get(workflow_id)).results["slow"]["gate"] == "slow"
    again = await http.get(f"/workflows/{workflow_id}/events", headers=AUTH)
    async with asyncio.timeout(20):  # settled: a late subscriber's stream ends at once
        assert [f["event"] for f in sse_frames(await again.text())][-1] == "task_done"


async def test_an_event_stream_of_a_run_failed_by_its_deadline_ends_though_a_task_is_queued(
    resolver_only: Engine, client: Client, http: Http
) -> None:
    """Its task waits for an agent nobody serves, and may never run: the stream ends."""
    async with Client(client.redis_settings, client.settings) as plain:  # no agent check
        workflow_id = await plain.submit({"timeout": 1, "tasks": [{"id": "t", "agent": "nope"}]})
    response = await http.get(f"/workflows/{workflow_id}/events", headers=AUTH)
    async with asyncio.timeout(20):
        kinds = [f["event"] for f in sse_frames(await response.text())]
    assert kinds[-1] == "failed", kinds
    assert (await client.get(workflow_id)).tasks[0].state == "queued"


async def test_a_live_subscriber_gets_keep_alives_then_every_event_until_it_ends(
    engine: Engine, client: Client, redis: Redis, keyspace: Keyspace
) -> None:
    workflow_id = await client.submit(GATED)
    await eventually(lambda: redis.llen(f"ledger:{workflow_id}"))
    async with serving(client, ApiSettings(heartbeat=0.05)) as http:
        response = await http.get(f"/workflows/{workflow_id}/events")
        received = b""
        async with asyncio.timeout(20):
            while b": keep-alive" not in received:
                received += await response.content.readany()
            await redis.rpush(f"open:{workflow_id}:slow", 1)
            received += await response.content.read()
    frames = sse_frames(received.decode())
    assert [f["event"] for f in frames] == await kept_kinds(redis, keyspace, workflow_id)
    assert frames[-1]["event"] == "completed"


async def test_cancel_stops_a_running_workflow_once(
    engine: Engine, client: Client, http: Http, redis: Redis
) -> None:
    workflow_id = await client.submit(GATED)
    await eventually(lambda: some_task(client, [workflow_id], "running"))  # its start recorded
    path = f"/workflows/{workflow_id}/cancel?reason=operator+said+so"
    assert await post_json(http, path, None) == (200, {"cancelled": True})
    assert await post_json(http, path, None) == (200, {"cancelled": False})
    status, state = await get_json(http, f"/workflows/{workflow_id}")
    assert (status, state["status"], state["reason"]) == (200, "cancelled", "operator said so")
    response = await http.get(f"/workflows/{workflow_id}/events", headers=AUTH)
    await redis.rpush(f"open:{workflow_id}:slow", 1)  # the running task ends: so does the stream
    async with asyncio.timeout(20):
        kinds = [f["event"] for f in sse_frames(await response.text())]
    assert kinds[-2:] == ["cancelled", "task_done"], kinds


async def test_stopping_the_server_ends_open_event_streams_at_once(client: Client) -> None:
    workflow_id = await client.submit(CHAIN)  # no engine: it stays running
    port, stop = free_port(), asyncio.Event()
    server = asyncio.create_task(serve(client, ApiSettings(port=port), stop))
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        await eventually(lambda: healthy(session, base))
        async with session.get(f"{base}/workflows/{workflow_id}/events") as response:
            first = await response.content.readuntil(b"\n\n")
            assert b"event: submitted" in first
            stop.set()
            async with asyncio.timeout(3):  # well under the grace other requests get
                await server
                assert await response.content.read() == b""


# -- agents and dead letters -----------------------------------------------------------------


async def test_agents_lists_each_agents_stream_figures(
    engine: Engine, client: Client, http: Http
) -> None:
    await client.wait(await client.submit(CHAIN), timeout=20)
    status, rows = await get_json(http, "/agents")
    assert status == 200
    echo = next(row for row in rows if row["agent"] == "echo")
    assert set(echo) == STATUS_KEYS and echo["length"] >= 2 and echo["dead_letters"] == 0


async def test_dead_letters_are_listed_and_a_requeue_after_the_fix_completes_the_workflow(
    engine: Engine, client: Client, http: Http, redis: Redis
) -> None:
    workflow_id = await client.submit(FIXABLE)
    assert (await client.wait(workflow_id, timeout=20)).status == "failed"
    status, rows = await get_json(http, "/dead/fixable")
    assert status == 200 and [(r["workflow"], r["task"]) for r in rows] == [(workflow_id, "fix")]
    entry_id = rows[0]["id"]
    status, entry = await get_json(http, f"/dead/fixable/{entry_id}")
    assert status == 200 and entry["error"] == "PermanentError: not fixed yet", entry

    await redis.set(f"fixed:{workflow_id}", 1)
    status, body = await post_json(http, f"/dead/fixable/{entry_id}/requeue", None)
    assert (status, body) == (200, {"requeued": entry_id, "workflow": workflow_id, "task": "fix"})
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    assert await get_json(http, "/dead/fixable") == (200, [])
    status, body = await post_json(http, f"/dead/fixable/{entry_id}/requeue", None)
    assert status == 404 and body["error"] == f"no dead letter {entry_id} for agent 'fixable'"


async def test_a_requeue_the_engine_refuses_is_409_with_the_reason(
    engine: Engine, client: Client, http: Http, redis: Redis, keyspace: Keyspace
) -> None:
    workflow_id = await client.submit({"tasks": [{"id": "fix", "agent": "echo"}]})
    assert (await client.wait(workflow_id, timeout=20)).status == "completed"
    stale = {"v": "1", "wf": workflow_id, "task": "fix", "agent": "fixable", "att": "1"}
    raw = {"v": "1", "agent": "fixable", "entry": "1-1", "reason": "payload trimmed before ack"}
    for fields, reason in [
        (stale, "is completed, not failed"),
        (raw, "it names no workflow and task"),
    ]:
        entry_id = (await redis.xadd(keyspace.dead(0, "fixable"), fields)).decode()
        status, body = await post_json(http, f"/dead/fixable/{entry_id}/requeue", None)
        assert status == 409 and reason in body["reason"], body
        assert body["error"].startswith(f"cannot requeue dead letter {entry_id}: ")
    assert len((await get_json(http, "/dead/fixable"))[1]) == 2
    assert (await get_json(http, "/dead/fixable/not-an-id"))[0] == 400
    assert (await get_json(http, "/dead/bad%20agent"))[0] == 400


async def test_purging_a_dead_letter_deletes_that_entry_only(
    client: Client, http: Http, redis: Redis, keyspace: Keyspace
) -> None:
    raw = {"v": "1", "agent": "fixable", "entry": "1-1", "reason": "payload trimmed before ack"}
    purged, kept = [(await redis.xadd(keyspace.dead(0, "fixable"), raw)).decode() for _ in "ab"]
    response = await http.delete(f"/dead/fixable/{purged}", headers=AUTH)
    assert (response.status, await response.json()) == (
        200,
        {"purged": purged, "workflow": "", "task": ""},
    )
    assert [row["id"] for row in (await get_json(http, "/dead/fixable"))[1]] == [kept]
    response = await http.delete(f"/dead/fixable/{purged}", headers=AUTH)
    assert (response.status, (await response.json())["error"]) == (
        404,
        f"no dead letter {purged} for agent 'fixable'",
    )
    assert (await http.delete("/dead/fixable/not-an-id", headers=AUTH)).status == 400


async def test_purging_an_agents_dead_letters_deletes_those_before_an_id_or_all(
    http: Http, redis: Redis, keyspace: Keyspace
) -> None:
    raw = {"v": "1", "agent": "fixable", "reason": "payload trimmed before ack"}
    _, second = [(await redis.xadd(keyspace.dead(0, "fixable"), raw)).decode() for _ in "ab"]
    assert await post_json(http, f"/dead/fixable/purge?before={second}", None) == (
        200,
        {"purged": 1},
    )
    assert [row["id"] for row in (await get_json(http, "/dead/fixable"))[1]] == [second]
    assert await post_json(http, "/dead/fixable/purge", None) == (200, {"purged": 1})
    assert await get_json(http, "/dead/fixable") == (200, [])
    assert (await post_json(http, "/dead/fixable/purge?before=soon", None))[0] == 400


# -- the document ----------------------------------------------------------------------------


async def test_openapi_json_describes_every_route(client: Client, http: Http) -> None:
    status, document = await get_json(http, "/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.1")
    app = make_app(client, ApiSettings())
    routes = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    listed = {(method, path) for path, item in document["paths"].items() for method in item}
    dashboard = {(method.lower(), path) for method, path in DASHBOARD_NEEDS}  # static files
    assert routes == listed | dashboard and not listed & dashboard
