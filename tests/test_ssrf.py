"""Server-side request forgery: agents read pages at URLs from outside (search results), so
a page read must never reach this machine, the private network or the cloud metadata service,
not by its first URL, a name that resolves there, nor a redirect; API base URLs that carry
keys are https unless a local stand-in is allowed by its exact host:port.

The pages are a real local aiohttp server on 127.0.0.1, reachable only because the tests list
its host:port in the fetch allowance; the addresses refused are checked before any connection
(Redis counts the connections it received: none)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

import pytest
from aiohttp import web
from redis.asyncio import Redis

from streamproc import Client
from streamproc.errors import ConfigError, FetchError, FetchRefused
from streamproc.outbound.guarded import OutboundSettings, PinnedResolver, blocked, read_page
from streamproc.outbound.providers import SearchSettings
from streamproc.outbound.providers.settings import KEY_VARIABLES
from streamproc.testing.embedded import EmbeddedRedis
from streamproc.testing.fakes import Fakes
from tests.conftest import Engine
from tests.daemon import Daemon

PAGE = (
    b"<html><head><title>Streams</title><style>p{color:red}</style>"
    b"<script>steal()</script></head><body><h1>Redis streams</h1>"
    b"<p>Consumer groups &amp; pending entries</p></body></html>"
)


@dataclass
class Pages:
    base: str
    address: str
    allowed: OutboundSettings


@pytest.fixture
async def pages(redis_server: EmbeddedRedis) -> AsyncIterator[Pages]:
    """A page server: ``/page/*`` HTML, ``/internal/*`` redirects to Redis's port, others
    redirect elsewhere, run long, loop or send 4 MiB.  Search results (``/search/<slug>/<n>``)
    are pages too, but those whose slug ends in ``internal`` redirect to Redis."""
    closing = asyncio.Event()

    def redirect(location: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(_: web.Request) -> web.Response:
            raise web.HTTPFound(location)

        return handle

    async def page(_: web.Request) -> web.Response:
        return web.Response(body=PAGE, content_type="text/html", charset="utf-8")

    async def big(_: web.Request) -> web.Response:
        return web.Response(body=b"x" * (4 << 20), content_type="text/plain")

    async def slow(_: web.Request) -> web.Response:
        await closing.wait()
        return web.Response(text="too late")

    inward = redirect(f"http://127.0.0.1:{redis_server.port}/")

    async def result(request: web.Request) -> web.Response:
        internal = request.match_info["slug"].endswith("internal")
        return await (inward if internal else page)(request)

    app = web.Application()
    app.router.add_get("/page/{tail:.*}", page)
    app.router.add_get("/internal/{tail:.*}", inward)
    app.router.add_get("/search/{slug}/{n}", result)
    app.router.add_get("/to-file", redirect("file:///etc/passwd"))
    app.router.add_get("/to-metadata", redirect("http://169.254.169.254/latest/meta-data/"))
    app.router.add_get("/hop", redirect("/page/after-a-hop"))
    app.router.add_get("/loop", redirect("/loop"))
    app.router.add_get("/big", big)
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield Pages(
            f"http://{host}:{port}",
            f"{host}:{port}",
            OutboundSettings(allow=frozenset({(host, port)})),
        )
    finally:
        closing.set()
        await runner.cleanup()


async def _connections(redis: Redis) -> int:
    return int((await redis.info("stats"))["total_connections_received"])


async def test_an_allowed_host_is_read(pages: Pages) -> None:
    page = await read_page(f"{pages.base}/page/streams", pages.allowed)
    assert (page.status, page.content_type, page.truncated) == (200, "text/html", False)
    assert page.body == PAGE and page.url == f"{pages.base}/page/streams"


async def test_a_redirect_within_allowed_hosts_is_followed(pages: Pages) -> None:
    page = await read_page(f"{pages.base}/hop", pages.allowed)
    assert page.url == f"{pages.base}/page/after-a-hop" and page.body == PAGE


async def test_a_redirect_from_an_allowed_host_to_redis_is_refused_before_connecting(
    pages: Pages, redis: Redis, redis_server: EmbeddedRedis
) -> None:
    before = await _connections(redis)
    with pytest.raises(FetchRefused) as refused:
        await read_page(f"{pages.base}/internal/x", pages.allowed)
    assert refused.value.url == f"http://127.0.0.1:{redis_server.port}/"
    assert refused.value.reason == "127.0.0.1 resolves to 127.0.0.1 (loopback)"
    assert await _connections(redis) == before, "nothing connected to Redis"


async def test_a_redirect_to_another_scheme_or_the_metadata_service_is_refused(
    pages: Pages,
) -> None:
    with pytest.raises(FetchRefused, match="scheme 'file' is not http or https"):
        await read_page(f"{pages.base}/to-file", pages.allowed)
    with pytest.raises(FetchRefused, match=r"169\.254\.169\.254 \(cloud metadata service\)"):
        await read_page(f"{pages.base}/to-metadata", pages.allowed)


async def test_a_name_resolving_to_loopback_is_refused(pages: Pages) -> None:
    port = pages.address.rsplit(":", 1)[1]  # the allowance names 127.0.0.1, not localhost
    with pytest.raises(FetchRefused) as refused:
        await read_page(f"http://localhost:{port}/page/x", pages.allowed)
    assert refused.value.reason == "localhost resolves to 127.0.0.1 (loopback)"


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "gopher://127.0.0.1:70/_x", "redis://127.0.0.1:6379/0", "ftp://a.b/"],
)
async def test_schemes_other_than_http_and_https_are_refused(url: str) -> None:
    with pytest.raises(FetchRefused, match=r"is not http or https$"):
        await read_page(url)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata service"),
        ("http://10.1.2.3/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://[::1]:8080/", "loopback"),
        ("http://0.0.0.0:8080/", "unspecified"),
        ("http://127.8.9.10/", "loopback"),
        ("http://2130706433/", "loopback"),  # 127.0.0.1 as one number
        ("http://169.254.1.1/", "link-local"),
        ("http://224.0.0.1/", "multicast"),
        ("http://100.64.0.1/", "not public"),
        ("http://[fc00::1]/", "private"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[::ffff:127.0.0.1]/", "loopback, wrapped in IPv6"),
        ("http://[64:ff9b::a00:1]/", "private, wrapped in IPv6"),
    ],
)
async def test_local_private_and_special_addresses_are_refused(
    url: str, why: str, redis: Redis
) -> None:
    before = await _connections(redis)
    with pytest.raises(FetchRefused) as refused:
        await read_page(url)
    assert refused.value.reason.endswith(f"({why})"), refused.value.reason
    assert await _connections(redis) == before


def test_public_unicast_addresses_pass_the_address_check() -> None:
    assert [blocked(a) for a in ("93.184.215.14", "2606:4700::6810:85e5", "8.8.8.8")] == [None] * 3


async def test_the_connection_gets_only_the_vetted_addresses_never_a_second_dns_answer() -> None:
    resolver = PinnedResolver()
    with pytest.raises(OSError, match="localhost:80 was not vetted"):
        await resolver.resolve("localhost", 80)  # no fallback to DNS (rebinding)
    vetted = await resolver.lookup("localhost", 80)
    resolver.pin("localhost", 80, vetted)
    assert await resolver.resolve("localhost", 80) is vetted


async def test_credentials_in_the_url_are_refused() -> None:
    with pytest.raises(FetchRefused, match="credentials in the URL"):
        await read_page("http://user:secret@example.org/")


async def test_an_oversize_body_is_cut_at_the_cap(pages: Pages) -> None:
    page = await read_page(f"{pages.base}/big", replace(pages.allowed, max_bytes=64 << 10))
    assert page.truncated and page.body == b"x" * (64 << 10)


async def test_a_redirect_loop_and_a_slow_page_end_with_a_reason(pages: Pages) -> None:
    with pytest.raises(FetchRefused, match="more than 5 redirects"):
        await read_page(f"{pages.base}/loop", pages.allowed)
    with pytest.raises(FetchError, match=r"no answer within 0\.5s"):
        await read_page(f"{pages.base}/slow", replace(pages.allowed, timeout=0.5))


def test_api_base_urls_are_https_unless_a_stand_in_is_allowed_by_host_and_port() -> None:
    env = {"SERPAPI_KEY": "k", "STREAMPROC_SERPAPI_URL": "http://127.0.0.1:8081"}
    with pytest.raises(ConfigError) as refused:
        SearchSettings.from_env(env)
    assert str(refused.value) == (
        "STREAMPROC_SERPAPI_URL must be an https:// URL; for a local stand-in over http, "
        "set STREAMPROC_SERPAPI_PLAIN_HTTP=127.0.0.1:8081"
    )
    with pytest.raises(ConfigError, match="https://"):
        SearchSettings.from_env({**env, "STREAMPROC_SERPAPI_PLAIN_HTTP": "127.0.0.1:8082"})
    allowed = SearchSettings.from_env({**env, "STREAMPROC_SERPAPI_PLAIN_HTTP": "127.0.0.1:8081"})
    assert allowed.url("serpapi") == "http://127.0.0.1:8081"
    secure = SearchSettings.from_env({**env, "STREAMPROC_SERPAPI_URL": "https://10.0.0.5"})
    assert secure.url("serpapi") == "https://10.0.0.5"
    with pytest.raises(ConfigError, match="is not host:port"):
        SearchSettings.from_env({**env, "STREAMPROC_SERPAPI_PLAIN_HTTP": "127.0.0.1"})


async def test_the_execution_agent_reads_the_top_result_and_is_refused_a_redirect_inward(
    pages: Pages,
    resolver_only: Engine,
    client: Client,
    worker_processes: Callable[..., Daemon],
) -> None:
    """Search results point at the page server: a public-looking page gives an excerpt, one
    that redirects to Redis is refused, and the task completes either way."""
    async with Fakes(retry_after=0, links=f"{pages.base}/search") as fakes:
        env = {**fakes.search_env(), "STREAMPROC_FETCH_ALLOW": pages.address}
        worker_processes("execution", env={**_without_search_settings(), **env})
        spec = {
            "tasks": [
                {"id": kind, "agent": "execution", "input": {"description": kind, "read": True}}
                for kind in ("page", "internal")
            ]
        }
        state = await client.wait(await client.submit(spec), timeout=20)
    assert state.status == "completed", state
    found = {task.id: task.result["page"] for task in state.tasks}
    assert found["page"]["excerpt"] == "Streams Redis streams Consumer groups & pending entries"
    assert found["internal"]["error"] == "127.0.0.1 resolves to 127.0.0.1 (loopback)"


def _without_search_settings() -> dict[str, str]:
    """This process's environment without the caller's search keys or streamproc settings."""
    return {
        k: v
        for k, v in os.environ.items()
        if k not in KEY_VARIABLES.values() and not k.startswith("STREAMPROC_")
    }
