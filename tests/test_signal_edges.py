"""Signals through the CLI and the HTTP API: what each answers, and every refusal in one
line (CLI) or one JSON error with its status (API), a tenant reaching its own workflows only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from streamproc import Client
from streamproc.http.auth import ApiSettings
from streamproc.http.tokens import parse_tokens
from streamproc.store.signals import MAX_SIGNAL_BYTES
from tests.cli_runner import STREAMPROC, assert_one_line_error, at, cli_env, run
from tests.conftest import Engine, eventually
from tests.http_helpers import AUTH, TOKEN, Http, serving
from tests.test_waits import GATED, history_kinds, is_in

ACME = "acme-token-for-the-signal-tests"


@pytest.fixture
async def http(client: Client) -> AsyncIterator[Http]:
    tokens = parse_tokens(f"{TOKEN}\n{ACME} tenant=acme", "\n", "tokens")
    async with serving(client, ApiSettings.with_credentials(tokens)) as test_client:
        yield test_client


async def post(http: Http, path: str, body: bytes | None, **headers: str) -> tuple[int, object]:
    sent = {**AUTH, "Content-Type": "application/json", **headers}
    response = await http.post(path, data=body, headers=sent)
    return response.status, await response.json()


async def test_the_cli_sends_a_signal_applied_once(
    engine: Engine, client: Client, redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    where = at(redis_url, client.keyspace)
    workflow_id = await client.submit(GATED)
    await eventually(lambda: is_in(client, workflow_id, "approve", "awaiting"))
    shown = await run("show", workflow_id, *where)
    line = next(row for row in shown.out.splitlines() if row.strip().startswith("approve"))
    assert line.split()[1:4] == ["awaiting", "1", "-"] and line.endswith("for signal approval")
    data = tmp_path / "payload.json"
    data.write_text('{"ok": true}')
    sent = await run("signal", workflow_id, "approval", "--data", f"@{data}", "--id", "a1", *where)
    assert sent.code == 0, sent
    assert sent.out.strip() == f"workflow {workflow_id}: signal approval (a1) resumed task approve"
    again = await run("signal", workflow_id, "approval", "--id", "a1", "--json", *where)
    assert orjson.loads(again.out)["outcome"] == "duplicate"
    again = await run("signal", workflow_id, "approval", "--id", "a1", "--data", "2", *where)
    assert again.out.strip() == (
        f"workflow {workflow_id}: signal approval (a1) was sent before (its id applies once); "
        "this one changed nothing"
    )
    state = await client.wait(workflow_id, timeout=20)
    assert state.results["approve"] == {"ok": True}
    history = await run("show", workflow_id, "--history", *where)
    assert "signalled" in history.out and "signal_id=a1" in history.out, history.out
    assert (await history_kinds(redis, client, workflow_id)).count(b"signalled") == 1


async def test_the_cli_refuses_signals_in_one_line(
    engine: Engine, client: Client, redis_url: str, tmp_path: Path
) -> None:
    where = at(redis_url, client.keyspace)
    workflow_id = await client.submit({"tasks": [{"id": "a", "agent": "echo"}]})
    await client.wait(workflow_id, timeout=20)
    big = tmp_path / "big.json"
    big.write_text(orjson.dumps("x" * MAX_SIGNAL_BYTES).decode())
    ended, unknown, bad, too_big, empty, repeated, past_64_bits = await asyncio.gather(
        run("signal", workflow_id, "approval", *where),
        run("signal", "nobody", "approval", *where),
        run("signal", workflow_id, "approval", "--data", "{nope", *where),
        run("signal", workflow_id, "approval", "--data", f"@{big}", *where),
        run("signal", workflow_id, "approval", "--data", "", *where),
        run("signal", workflow_id, "approval", "--data", '{"a": 1, "a": 2}', *where),
        run("signal", workflow_id, "approval", "--data", '{"n": 123456789012345678901}', *where),
    )
    assert_one_line_error(ended, f"error: workflow '{workflow_id}' is completed")
    assert_one_line_error(unknown, "error: workflow 'nobody' not found")
    assert ended.code == unknown.code == 1
    assert_one_line_error(bad, "error: signal payload is not valid JSON")
    assert_one_line_error(too_big, "error: signal payload is 65538 bytes, over the 65536 limit")
    # Refused, not changed on the way: an empty --data was taken as null, a repeated key as
    # its last value, and an integer past 64 bits as a float.
    assert_one_line_error(empty, "error: signal payload is not valid JSON: Input is a zero-len")
    assert_one_line_error(repeated, "error: duplicate key 'a' in the signal payload")
    assert_one_line_error(past_64_bits, "error: the integer in 'n' is past 64 bits")


async def test_a_kept_signal_is_listed_by_show(
    engine: Engine, client: Client, redis_url: str
) -> None:
    where = at(redis_url, client.keyspace)
    workflow_id = await client.submit({"tasks": [{"id": "s", "agent": "sleep", "input": 30}]})
    await client.signal(workflow_id, "later", {"n": 1}, signal_id="k1")
    shown = await run("show", workflow_id, *where)
    assert "signal later (k1, 7 bytes) kept" in shown.out, shown
    as_json = orjson.loads((await run("show", workflow_id, "--json", *where)).out)
    assert as_json["signals"] == [{"name": "later", "id": "k1", "size": 7}]
    await client.cancel(workflow_id)


async def test_the_api_sends_a_signal_with_its_idempotency_key_as_its_id(
    engine: Engine, client: Client, http: Http
) -> None:
    workflow_id = await client.submit(GATED)
    await eventually(lambda: is_in(client, workflow_id, "approve", "awaiting"))
    path = f"/workflows/{workflow_id}/signals/approval"
    status, body = await post(http, path, b'{"by": "api"}', **{"Idempotency-Key": "k-1"})
    assert (status, body) == (
        200,
        {
            "workflow": workflow_id,
            "name": "approval",
            "id": "k-1",
            "outcome": "applied",
            "task": "approve",
        },
    )
    status, body = await post(http, path, b'{"by": "again"}', **{"Idempotency-Key": "k-1"})
    assert (status, body["outcome"]) == (200, "duplicate")  # type: ignore[index]
    state = await client.wait(workflow_id, timeout=20)
    assert state.results["approve"] == {"by": "api"}
    assert (await post(http, path, b"null"))[0] == 409
    assert (await post(http, "/workflows/nobody/signals/approval", b"null"))[0] == 404
    assert (await post(http, path, b"{nope"))[0] == 400
    huge = orjson.dumps("x" * MAX_SIGNAL_BYTES)
    status, body = await post(http, path, huge)
    assert status == 413 and "over the 65536 limit" in body["error"], body  # type: ignore[index]
    status, body = await post(http, "/workflows/a/signals/bad%20name", b"null")
    assert status == 400 and "invalid signal name" in body["error"], body  # type: ignore[index]


async def test_a_tenant_signals_its_own_workflows_only(
    engine: Engine, client: Client, http: Http
) -> None:
    acme = {"Authorization": f"Bearer {ACME}", "Content-Type": "application/json"}
    created = await http.post("/workflows", data=orjson.dumps(GATED), headers=acme)
    shown_id = (await created.json())["id"]
    path = f"/workflows/{shown_id}/signals/approval"
    assert (await post(http, path, b"1"))[0] == 404  # the operator's id space has no such one
    response = await http.post(path, data=b"1", headers=acme)
    body = await response.json()
    assert response.status == 200 and body["workflow"] == shown_id, body
    assert body["outcome"] in ("applied", "kept")


async def test_a_run_with_a_wait_replays_from_the_record_and_live(
    engine: Engine, client: Client, redis_url: str
) -> None:
    where = at(redis_url, client.keyspace)
    workflow_id = await client.submit(GATED)
    await client.signal(workflow_id, "approval", "yes")
    original = await client.wait(workflow_id, timeout=20)
    recorded = await run("replay", "run", workflow_id, *where)
    assert recorded.code == 0 and "no difference" in recorded.out, recorded  # no signal needed
    live = ["--from-task", "approve", "--import", "tests.agents_for_tests"]
    replayed = await live_replay_signalled(client, [workflow_id, *live, *where], "again")
    assert (await client.get(replayed)).results["approve"] == "again"
    assert original.results["approve"] == "yes"


async def live_replay_signalled(client: Client, args: list[str], payload: object) -> str:
    """Run ``streamproc replay run ARGS``, a replay whose task ``approve`` waits, live, for the
    signal ``approval``: send it ``payload`` once it awaits, and return the replay's id once
    the replay ended well."""
    process = await asyncio.create_subprocess_exec(
        str(STREAMPROC),
        "replay",
        "run",
        *args,
        env=cli_env(),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(30):
            while not (line := (await process.stderr.readline()).decode()).startswith("replay"):
                assert line, "the replay ended before it began"
            replayed = line.split()[-1]
            await eventually(lambda: is_in(client, replayed, "approve", "awaiting"))
            await client.signal(replayed, "approval", payload)
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return replayed
