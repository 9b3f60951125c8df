"""The HTTP API (``streamproc api``): submit, list, read, follow and cancel workflows, see agent
stats, search figures and dead letters, requeue or purge them.

Handlers stay thin: each validates its input and calls the library, and lets the library's
errors through to ``api_errors``, which answers them as JSON with the status a caller can act
on.  Routes are described in ``openapi.py``, with the scope each needs; who may call them is
``api_auth``'s concern.  A handler meets workflow ids as its caller names them: it turns them
into stored ones with the caller's :class:`Grant`, and back in what it answers, so a tenant
never sees its prefix, in a reply, an event or an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streamproc.client import Client
from streamproc.engine import failpoints
from streamproc.errors import CannotListen, RedisReset, WorkflowNotFound
from streamproc.http.auth import GRANT, ApiSettings, bearer_auth
from streamproc.http.bodies import IDEMPOTENCY_KEY, chosen_id, json_object, one_header
from streamproc.http.caps import StreamCaps, bearer_id
from streamproc.http.cors import allow_origin, preflight
from streamproc.http.dashboard import DASHBOARD_NEEDS, dashboard_routes
from streamproc.http.dead import dead_routes
from streamproc.http.errors import json_errors, named_as, reply
from streamproc.http.event_tokens import EVENTS, EventTokens, QuietAccessLogger
from streamproc.http.hub import Hub, running
from streamproc.http.listing import list_route
from streamproc.http.openapi import DOCUMENT, needs, queries
from streamproc.http.own_pages import own_pages_only
from streamproc.http.query import known_query
from streamproc.http.redact import tenant_state
from streamproc.http.server import QuietRunner, secure_headers
from streamproc.http.signals import signal_routes
from streamproc.http.sse import stream_events
from streamproc.http.tasks import task_routes
from streamproc.ops.results import elided
from streamproc.ops.search_stats import search_figures
from streamproc.ops.served import check_agents
from streamproc.ops.status import agent_stats, known_agents
from streamproc.registry import registered
from streamproc.spec.model import WorkflowSpec
from streamproc.store import folded
from streamproc.store.ids import check_id
from streamproc.transport.epoch import Epoch
from streamproc.transport.retrying import until_redis_answers

log = logging.getLogger(__name__)
CLIENT = web.AppKey("client", Client)
AGENTS = web.AppKey("agents", frozenset[str])
SETTINGS = web.AppKey("settings", ApiSettings)
CLOSING = web.AppKey("closing", asyncio.Event)
TOKENS = web.AppKey("tokens", EventTokens)
HUB = web.AppKey("hub", Hub)
CAPS = web.AppKey("caps", StreamCaps)
MAX_REASON = 1000
SHUTDOWN_GRACE = 5.0
# Seconds a refused request's unread body is still drained (so its client reads the refusal
# rather than a reset); aiohttp's 10 would let a trickling client outlast the body timeout.
LINGER = 1.0


def make_app(
    client: Client,
    settings: ApiSettings,
    epoch: Epoch | None = None,
    registry: Collection[str] | None = None,
) -> web.Application:
    """The application; ``client`` stays the caller's to close.  With ``epoch``, every route
    but ``/healthz`` answers 503 once Redis is found to have lost its data (to callers who
    got past the bearer check: the others learn nothing of it).  ``registry`` holds the agents
    a spec may name besides the ones a worker serves (default: this process's registry)."""
    guards = [] if epoch is None else [refuse_after_reset(epoch)]
    own = [] if settings.credentials else [own_pages_only(settings.cors_origins)]
    tokens = EventTokens(settings.signing_key, settings.event_token_ttl)
    app = web.Application(
        client_max_size=settings.client_max_size,
        middlewares=[
            preflight(settings.cors_origins),
            json_errors,
            *own,
            bearer_auth(settings.credentials, {**needs(), **DASHBOARD_NEEDS}, tokens.grant),
            known_query(queries()),
            *guards,
        ],
    )
    app[CLIENT], app[SETTINGS], app[CLOSING] = client, settings, asyncio.Event()
    app[TOKENS], app[AGENTS] = tokens, frozenset(registered() if registry is None else registry)
    app[HUB] = Hub(client.redis, client.keyspace)
    app[CAPS] = StreamCaps(settings.max_streams_per_token, settings.max_streams_per_tenant)
    app.cleanup_ctx.append(lambda app: running(app[HUB]))
    app.on_shutdown.append(close_streams)
    app.on_response_prepare.append(secure_headers)
    app.on_response_prepare.append(allow_origin(settings.cors_origins))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_post("/workflows", submit)
    app.router.add_get("/workflows", list_route(client.redis, client.keyspace))
    app.router.add_get("/workflows/{id}", show)
    app.router.add_routes(task_routes(client))
    app.router.add_get(EVENTS, events, allow_head=False)
    app.router.add_post("/workflows/{id}/events-token", events_token)
    app.router.add_post("/workflows/{id}/cancel", cancel)
    app.router.add_routes(signal_routes(client, settings.body_timeout))
    app.router.add_get("/agents", agents)
    app.router.add_get("/search", search)
    app.router.add_routes(dead_routes(client))
    app.router.add_routes(dashboard_routes())
    return app


async def serve(
    client: Client,
    settings: ApiSettings,
    stop: asyncio.Event,
    listening: Callable[[], None] = lambda: None,
    registry: Collection[str] | None = None,
) -> None:
    """Serve until ``stop`` is set; open event streams then end (their clients reconnect
    with ``Last-Event-ID``), other requests get a short grace.  ``listening`` is called once
    the port is bound, so nobody announces a server that is not there."""
    settings.check_bind()
    epoch = Epoch(client.redis, client.keyspace)
    await until_redis_answers(epoch.establish)
    app = make_app(client, settings, epoch, registry)
    runner = QuietRunner(
        app,
        handler_cancellation=True,
        shutdown_timeout=SHUTDOWN_GRACE,
        access_log_class=QuietAccessLogger,
        keepalive_timeout=settings.header_timeout,
        lingering_time=LINGER,
    )
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, settings.host, settings.port).start()
        except (OSError, UnicodeError) as exc:
            raise CannotListen("the HTTP API", settings.host, settings.port, exc) from None
        log.info("serving the HTTP API on %s port %s", settings.host, settings.port)
        listening()
        try:
            await epoch.watch(stop)
        except RedisReset as exc:
            log.error("%s", exc)  # every route now answers 503 with it
            await stop.wait()
    finally:
        await runner.cleanup()


def refuse_after_reset(epoch: Epoch) -> Middleware:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if epoch.broken is not None and request.path != "/healthz":
            raise epoch.broken
        return await handler(request)

    return guard


async def healthz(_: web.Request) -> web.Response:
    """Liveness only (no auth, no Redis call): Redis trouble shows as 503 on the other routes."""
    return reply({"ok": True})


async def openapi(_: web.Request) -> web.Response:
    return reply(DOCUMENT)


async def metrics_page(_: web.Request) -> web.Response:
    """This process's Prometheus metrics: what it did (cancels, for one); the fleet's stream
    figures are the resolver's to export (see metrics.py)."""
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def submit(request: web.Request) -> web.Response:
    """201 for a new workflow, 200 when this id already had this spec (decided atomically, so
    of two racing first submits exactly one gets 201), 429 past a tenant's limits."""
    grant = request[GRANT]
    settings = request.app[SETTINGS]
    body = await json_object(request, settings.client_max_size, settings.body_timeout)
    given = chosen_id(body, one_header(request, IDEMPOTENCY_KEY))
    client, registry = request.app[CLIENT], request.app[AGENTS]
    with named_as(given):
        spec = WorkflowSpec.from_dict(body)
        await check_agents(client, spec, registry)
        quota = settings.quota(grant.tenant)
        stored, created = await client.create(spec, grant.stored_id(given), quota)
    failpoints.failpoint("api.after_submit_before_response")
    shown = grant.shown_id(stored)
    if not created:
        return reply({"id": shown})
    response = reply({"id": shown}, 201)
    response.headers["Location"] = f"/workflows/{quote(shown, safe='')}"
    return response


async def show(request: web.Request) -> web.Response:
    given = request.match_info["id"]
    with named_as(given):
        state = (await request.app[CLIENT].get(request[GRANT].stored_id(given))).to_dict()
    state = elided(state, request.app[SETTINGS].max_shown_result_bytes)
    return reply({**(state if request[GRANT].tenant is None else tenant_state(state)), "id": given})


async def events(request: web.Request) -> web.StreamResponse:
    app, given, grant = request.app, request.match_info["id"], request[GRANT]
    stored = grant.stored_id(given)
    with app[CAPS].held(request, grant.tenant):
        return await stream_events(
            request,
            app[HUB],
            stored,
            given,
            app[SETTINGS].heartbeat,
            app[CLOSING],
            tenant=grant.tenant is not None,
        )


async def events_token(request: web.Request) -> web.Response:
    """A token that opens this workflow's event stream from a URL (``event_tokens.py``)."""
    client, grant, given = request.app[CLIENT], request[GRANT], request.match_info["id"]
    stored = grant.stored_id(given)
    if not await folded.exists(client.redis, client.keyspace, check_id("workflow id", stored)):
        raise WorkflowNotFound(given)
    tokens = request.app[TOKENS]
    token = tokens.issue(stored, grant.tenant, bearer_id(request))
    return reply({"token": token, "expires_in": tokens.ttl})


async def close_streams(app: web.Application) -> None:
    """End open event streams first: they would otherwise hold the shutdown until cut."""
    app[CLOSING].set()


async def cancel(request: web.Request) -> web.Response:
    reason = request.query.get("reason", "cancelled")
    if not reason or len(reason) > MAX_REASON:
        raise web.HTTPBadRequest(text=f"reason must be 1 to {MAX_REASON} characters")
    given = request.match_info["id"]
    with named_as(given):
        cancelled = await request.app[CLIENT].cancel(request[GRANT].stored_id(given), reason)
    return reply({"cancelled": cancelled})


async def agents(request: web.Request) -> web.Response:
    client = request.app[CLIENT]
    names = sorted(set(await known_agents(client.redis, client.keyspace)) | set(registered()))
    return reply([row.to_dict() for row in await agent_stats(client.redis, client.keyspace, names)])


async def search(request: web.Request) -> web.Response:
    client = request.app[CLIENT]
    return reply(await search_figures(client.redis, client.keyspace))
