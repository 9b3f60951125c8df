"""Security check 7 of the fault matrix: with every provider key set to a canary, workflows
that succeed and fail (keys refused, tasks dead-lettered, requeued and replayed) leave it
nowhere: not in the HTTP API's responses, the CLI's output, the daemons' logs, a stream, a
key's dump, the append-only log or a dead letter's reason; nor does a canary token in
malformed requests.  (The fault suite runs under a
canary too: see faults/conftest.py.)"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from streamproc import Client, ClientSettings, Keyspace
from streamproc.errors import ProviderError
from streamproc.http.app import make_app, serve
from streamproc.http.auth import ApiSettings
from streamproc.ops.deadletters import DeadLetter, list_dead
from streamproc.outbound.llm import LLMClient, LLMSettings
from streamproc.outbound.providers import RetryPolicy, SearchChain, close_session
from streamproc.outbound.providers.serpapi import SerpApi
from streamproc.outbound.providers.settings import KEY_VARIABLES
from streamproc.outbound.providers.tavily import Tavily
from streamproc.outbound.secret import Secret
from streamproc.testing.embedded import EmbeddedRedis, free_port
from streamproc.testing.fakes import Behaviour, Fakes
from tests.cli_runner import STREAMPROC, Run, at, cli_env
from tests.conftest import eventually
from tests.faults.workload import all_ready, resolver, worker
from tests.test_api_malformed import exchange, malformed, status_and_body

CANARY = f"SPCANARY-{uuid.uuid4()}"
TOKEN = "canary-check-api-token"  # noqa: S105 (a test token)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SCRUBBED = "Incorrect API key provided: ***."  # the model's refusal, echoing the key it got
Http = TestClient[web.Request, web.Application]


def search(description: str) -> dict[str, Any]:
    task = {"id": "search", "agent": "execution", "input": {"description": description}}
    return {"tasks": [task | {"retries": 0}]}


ASK = {"tasks": [{"id": "ask", "agent": "description", "retries": 0}]}


class Seen:
    """Everything the check reads, each with where it came from."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def add(self, source: str, content: str | bytes) -> None:
        text = content.decode("latin-1") if isinstance(content, bytes) else content
        self.texts.append((source, text))

    def __getitem__(self, source: str) -> str:
        return "\n".join(text for seen, text in self.texts if seen == source)

    def holding(self, needle: str) -> list[str]:
        return [source for source, text in self.texts if needle in text]


async def cli(seen: Seen, env: dict[str, str], *args: str) -> Run:
    """``streamproc ARGS -vv`` with the canary keys in its environment; output kept."""
    process = await asyncio.create_subprocess_exec(
        str(STREAMPROC),
        *args,
        "-vv",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    result = Run(process.returncode, out.decode(), err.decode())
    seen.add(f"CLI {' '.join(args)}", f"{result.out}\n{result.err}")
    return result


async def call(seen: Seen, http: Http, method: str, path: str, body: Any = None) -> Any:
    """One API request with the token; its status, headers and body kept, its JSON returned
    (the text for a non-JSON reply)."""
    headers = dict(AUTH)
    data = None
    if body is not None:
        data, headers["Content-Type"] = orjson.dumps(body), "application/json"
    async with asyncio.timeout(20), http.request(method, path, data=data, headers=headers) as r:
        text = await r.text()
    seen.add(f"HTTP {method} {path}", f"{r.status}\n{dict(r.headers)}\n{text}")
    assert r.status < 500, (path, r.status, text)
    is_json = r.content_type == "application/json"
    return orjson.loads(text) if is_json else text


async def failed_again(client: Client, workflow_id: str) -> bool:
    """For ``eventually``: failed a second time, after its requeue."""
    state = await client.get(workflow_id)
    return state.status == "failed" and state.tasks[0].attempt == 2


async def everything_in(seen: Seen, redis: Redis) -> None:
    """Every key's DUMP, and every stream's entries, XRANGE'd."""
    async for key in redis.scan_iter(count=1000):
        seen.add(f"DUMP {key!r}", await redis.dump(key) or b"")
        if await redis.type(key) == b"stream":
            seen.add(f"XRANGE {key!r}", repr(await redis.xrange(key)))


@pytest.fixture
def dump_ready_redis() -> Iterator[EmbeddedRedis]:
    """A redis-server of the test's own that compresses nothing, so DUMP payloads and the
    append-only log's base hold their strings as written, for a search to find."""
    with EmbeddedRedis(None, None, "--rdbcompression", "no") as server:
        yield server


@pytest.fixture
async def canary_fakes(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Fakes]:
    """Every fake provider expecting the canary, and this process's environment (which the
    daemons and the CLI get) holding it as every key."""
    async with Fakes(keys=dict.fromkeys((*KEY_VARIABLES, "llm"), CANARY), retry_after=0) as fakes:
        for variable, value in fakes.env().items():
            monkeypatch.setenv(variable, value)
        yield fakes


async def test_a_canary_key_shows_in_no_response_output_log_stream_dump_aof_or_reason(
    dump_ready_redis: EmbeddedRedis,
    canary_fakes: Fakes,
    keyspace: Keyspace,
    tmp_path: Path,
) -> None:
    server, fakes, seen = dump_ready_redis, canary_fakes, Seen()
    fakes.serpapi.behaviour = Behaviour.UNAUTHORIZED  # its key refused: the chain moves on
    fakes.brave.behaviour = Behaviour.QUOTA_SPENT
    fakes.llm.behaviour = Behaviour.UNAUTHORIZED  # echoes the key it refuses
    env = {**cli_env(), **fakes.env()}
    where = at(server.url, keyspace)
    daemons = [
        resolver(server.url, keyspace.namespace),
        worker(server.url, keyspace.namespace, "execution,description", "-v"),  # -v -v: debug
    ]
    settings = ClientSettings(keyspace=keyspace)
    try:
        async with (
            Client(server.url, settings) as client,
            TestClient(TestServer(make_app(client, ApiSettings.with_tokens([TOKEN])))) as http,
        ):
            await eventually(lambda: all_ready(daemons))
            spec_file = tmp_path / "search.json"
            spec_file.write_bytes(orjson.dumps(search("streams")))
            submitted = await cli(seen, env, "submit", str(spec_file), "--wait", *where)
            assert submitted.code == 0, submitted
            found = await client.get(submitted.out.split()[0])
            assert found.results["search"]["provider"] == "tavily"  # past serpapi and brave

            fakes.tavily.behaviour = fakes.bing.behaviour = Behaviour.UNAUTHORIZED
            unsearched = (await call(seen, http, "POST", "/workflows", search("queues")))["id"]
            unasked = (await call(seen, http, "POST", "/workflows", ASK))["id"]
            for workflow_id in (unsearched, unasked):
                assert (await client.wait(workflow_id, timeout=30)).status == "failed"
            [searched] = await list_dead(client.redis, keyspace, "execution")
            [asked] = await list_dead(client.redis, keyspace, "description")
            await call(seen, http, "POST", f"/dead/description/{asked.entry_id}/requeue")
            requeue = ["dead", "requeue", searched.entry_id, "--agent", "execution"]
            requeued = await cli(seen, env, *requeue, *where)
            assert requeued.code == 0, requeued
            for workflow_id in (unsearched, unasked):
                await eventually(partial(failed_again, client, workflow_id))
            replayed = await cli(seen, env, "replay", "run", unsearched, "--live", *where)
            assert replayed.code == 0, replayed

            dead = {
                agent: await list_dead(client.redis, keyspace, agent)
                for agent in ("execution", "description")
            }
            for agent, letters in dead.items():
                seen.add(f"DLQ reasons of {agent}", "\n".join(d.fields["reason"] for d in letters))
            ids = found.id, unsearched, unasked
            await read_everything(seen, env, where, http, ids, dead)
            await everything_in(seen, client.redis)
    finally:
        for daemon in daemons:
            daemon.kill()
    server.stop()  # the append-only log flushed
    aof = b"".join(p.read_bytes() for p in (server.data_dir / "appendonlydir").iterdir())
    seen.add("append-only log", aof)
    seen.add("redis-server log", (server.data_dir / "redis.log").read_bytes())
    for daemon in daemons:
        seen.add(f"{daemon.args[1]} log", daemon.log_text())

    assert not seen.holding(CANARY), f"the canary is in {seen.holding(CANARY)}"
    # It really went out, was refused and echoed back, and what was searched holds what the
    # runs wrote: else finding no canary would prove nothing.
    assert fakes.serpapi.requests and fakes.tavily.requests and fakes.llm.requests
    assert SCRUBBED in seen["DLQ reasons of description"]
    assert "key rejected" in seen["DLQ reasons of execution"]
    assert "llm disabled for this process: key rejected" in seen["worker log"]
    assert keyspace.namespace.encode() in aof and SCRUBBED.encode() in aof
    kinds = {source.split()[0] for source in seen.holding(SCRUBBED)}
    assert {"DUMP", "XRANGE", "HTTP", "CLI"} <= kinds, kinds


async def read_everything(
    seen: Seen,
    env: dict[str, str],
    where: list[str],
    http: Http,
    ids: tuple[str, str, str],
    dead: dict[str, list[DeadLetter]],
) -> None:
    """Every API route and every CLI verb that reads, at once."""
    paths = ["/healthz", "/openapi.json", "/metrics", "/agents", "/search", "/workflows"]
    paths += ["/ui", "/ui/", "/ui/app.js"]
    paths += [f"/dead/{agent}" for agent in dead]
    paths += [f"/dead/{agent}/{d.entry_id}" for agent, letters in dead.items() for d in letters]
    paths += [f"/workflows/{i}{tail}" for i in ids for tail in ("", "/events")]
    requests = [("GET", path) for path in paths]
    requests += [("POST", f"/workflows/{i}/cancel") for i in ids]  # they ended: no effect
    requests += [("POST", f"/workflows/{i}/signals/approval") for i in ids]  # ended: 409
    requests += [("POST", f"/workflows/{i}/events-token") for i in ids]
    requests += [("DELETE", f"/dead/{agent}/0-1") for agent in dead]  # none such: 404
    requests += [("POST", f"/dead/{agent}/purge?before=0-1") for agent in dead]  # none before
    found, unsearched, unasked = ids
    tasks = {found: "t3", unsearched: "search", unasked: "ask"}  # t3 searched
    requests += [
        ("GET", f"/workflows/{i}/tasks/{task}/{part}")
        for i, task in tasks.items()
        for part in ("result", "input")
    ]
    searched, asked = dead["execution"][0].entry_id, dead["description"][0].entry_id
    verbs = [  # each with its exit code
        (["status"], 0),
        (["status", "--json"], 0),
        (["show", found], 0),
        (["show", unsearched, "--history"], 0),
        (["show", unasked, "--json", "--history"], 0),
        (["events", "--workflow", unsearched], 0),
        (["events", "--workflow", unasked, "--json"], 0),
        (["replay", "stream", "--agent", "execution"], 0),
        (["replay", "stream"], 0),
        (["replay", "diff", found, unsearched], 1),  # they differ
        (["dead", "list"], 0),
        (["dead", "list", "--json"], 0),
        (["dead", "show", searched, "--agent", "execution"], 0),
        (["dead", "show", asked, "--agent", "description", "--json"], 0),
        (["cancel", found], 1),  # it had ended
        (["signal", found, "approval"], 1),  # it had ended
    ]
    runs = await asyncio.gather(
        *(call(seen, http, method, path) for method, path in requests),
        *(cli(seen, env, *verb, *where) for verb, _ in verbs),
    )
    outputs = runs[len(requests) :]
    assert [r.code for r in outputs] == [code for _, code in verbs], outputs
    assert not [r for r in outputs if "Traceback" in r.err], outputs
    assert not unrequested(http.app, seen), unrequested(http.app, seen)


def unrequested(app: web.Application, seen: Seen) -> list[str]:
    """The API's routes no request of ``seen`` went to (a query string aside)."""
    requested = [source.split()[1:] for source, _ in seen.texts if source.startswith("HTTP ")]
    missed = []
    for route in app.router.routes():
        canonical = route.resource.canonical if route.resource else ""
        pattern = re.compile(re.sub(r"\{\w+\}", "[^/]+", canonical))
        if route.method != "HEAD" and not any(
            method == route.method and pattern.fullmatch(path.partition("?")[0])
            for method, path in requested
        ):
            missed.append(f"{route.method} {canonical}")
    return missed


async def test_a_broken_reply_leaves_no_key_in_the_error_or_its_logged_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """aiohttp's error for a reply it cannot parse holds the request's URL (SerpAPI's key is
    in its query) and headers (Tavily's and the model's ``Authorization: Bearer <key>``).
    The provider error raised instead keeps no link to it, so logging it, traceback and all,
    shows neither, even to a formatter that prints hidden exception contexts."""
    heads: list[bytes] = []

    async def broken_reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nNot A Header\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(broken_reply, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    once = RetryPolicy(attempts=1)
    chain = SearchChain([SerpApi(Secret(CANARY), base), Tavily(Secret(CANARY), base)], once)
    llm = LLMClient(LLMSettings(f"{base}/v1", "model", Secret(CANARY), retry=once))
    caplog.set_level(logging.DEBUG)
    errors: list[ProviderError] = []
    async with server:
        try:
            for attempt in (partial(chain.search, "q", 5), partial(llm.ask, "q")):
                with pytest.raises(ProviderError) as caught:
                    await attempt()
                logging.getLogger(__name__).error("the request failed", exc_info=caught.value)
                errors.append(caught.value)
        finally:
            await close_session()  # the providers' shared session, opened by these calls
    assert [e.provider for e in errors] == ["search", "llm"]
    assert all("connection failed (ClientResponseError)" in str(e) for e in errors), errors
    sent = b"".join(heads)
    assert f"api_key={CANARY}".encode() in sent  # it really went out, in a query and in headers
    assert sent.count(f"Authorization: Bearer {CANARY}".encode()) == 2
    shown = [caplog.text, *(repr(each) for error in errors for each in linked(error))]
    assert not [text for text in shown if CANARY in text]


def linked(error: BaseException) -> list[BaseException]:
    """The error, the provider errors it gathers and every exception chained to any of them,
    hidden contexts included."""
    found = [error]
    for each in found:
        found += [e for e in (each.__cause__, each.__context__) if e is not None]
        found += getattr(each, "failures", {}).values()
    return found


async def test_a_canary_token_in_malformed_requests_shows_in_no_response_or_log(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """The requests of test_api_malformed.py, and a token with a byte that is no UTF-8, one
    in a query string and a lowercase method, each with the canary as their token, against
    the real server (``serve``) with the canary as its token."""
    caplog.set_level(logging.DEBUG)
    port, stop = free_port(), asyncio.Event()
    server = asyncio.create_task(serve(client, ApiSettings.with_tokens([CANARY], port=port), stop))
    get = "GET /agents HTTP/1.1\r\nHost: x\r\n"
    requests = [f"{get}{line}Connection: close\r\n\r\n" for line in malformed(CANARY).values()]
    requests += [
        f"post /workflows HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CANARY}\r\n\r\n",
        f"GET /agents?token={CANARY} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ]
    raw = [r.encode() for r in requests]
    raw.append(
        f"{get}Authorization: Bearer {CANARY}".encode() + b"\xe9\r\nConnection: close\r\n\r\n"
    )
    try:
        await eventually(partial(answers, port))
        answers_seen = [await exchange(port, request) for request in raw]
    finally:
        stop.set()
        await server
    assert all(400 <= status_and_body(a)[0] < 500 for a in answers_seen), answers_seen
    assert not [a for a in answers_seen if CANARY.encode() in a], answers_seen
    assert CANARY not in caplog.text, caplog.text


async def answers(port: int) -> bool:
    try:
        return (await exchange(port, b"GET /healthz HTTP/1.0\r\n\r\n")).startswith(b"HTTP")
    except OSError:
        return False
