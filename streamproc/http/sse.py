"""A workflow's lifecycle events over HTTP, as server-sent events (``text/event-stream``).

The stream starts from the first kept event of the workflow, so a subscriber that comes late
still sees its history, and ends after its final event (completed, failed or cancelled) once
none of its tasks is running or queued for a served agent (``events.has_settled``): tasks
started before a failure or a cancel run on, and a dashboard shows them end.
Each frame carries the event's stream id (an output chunk's marked ``:out``: the output
stream's ids may equal the history's), so a client that reconnects with ``Last-Event-ID``
resumes after the last event it saw.  The chunks the workflow's agents emit come as
``output`` events among the lifecycle ones, in time order.  Events and errors name the
workflow as the caller does (a tenant's without its tenant).  A keep-alive comment goes out
when nothing happened for a while: proxies then keep the connection open, and a client that
went away is noticed.  When the server stops, open streams end at once rather than holding up
the shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator

import orjson
from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streamproc.errors import WorkflowNotFound
from streamproc.http.bodies import one_header
from streamproc.http.errors import UNAVAILABLE
from streamproc.http.hub import Hub
from streamproc.http.redact import tenant_event
from streamproc.ops.events import Event, is_position
from streamproc.store import folded
from streamproc.store.ids import ID_PATTERN, check_id

log = logging.getLogger(__name__)
HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: pass each frame on at once
}
KEEP_ALIVE = b": keep-alive\n\n"


async def stream_events(
    request: web.Request,
    hub: Hub,
    workflow_id: str,
    shown_id: str,
    beat: float,
    closing: asyncio.Event,
    *,
    tenant: bool = False,
) -> web.StreamResponse:
    """Send the events of the workflow stored as ``workflow_id``, named ``shown_id``, until it
    ends or ``closing`` is set (the server stops); 400/404 before the stream starts.  A
    ``tenant`` is not shown worker names (``redact.py``)."""
    given = one_header(request, "Last-Event-ID")  # twice: which one did it mean?
    start = "0" if given is None else given
    if not is_position(start):
        raise web.HTTPBadRequest(text="Last-Event-ID must be an event's id (ms-seq[:out])")
    if not await folded.exists(hub.redis, hub.keyspace, check_id("workflow id", workflow_id)):
        raise WorkflowNotFound(shown_id)
    response = web.StreamResponse(headers=HEADERS)
    await response.prepare(request)
    with contextlib.suppress(ConnectionResetError):  # the client went away
        try:
            events = hub.follow(workflow_id, start)
            await relay(events, shown_id, response, beat, closing, tenant=tenant)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            log.warning("wf=%s event stream: redis unavailable: %s", workflow_id, exc)
            await response.write(frame("error", {"error": UNAVAILABLE}))
        except WorkflowNotFound:  # expired between the check and the first read
            await response.write(frame("error", {"error": str(WorkflowNotFound(shown_id))}))
    return response


async def relay(
    events: AsyncGenerator[Event, None],
    shown_id: str,
    response: web.StreamResponse,
    beat: float,
    closing: asyncio.Event,
    *,
    tenant: bool = False,
) -> None:
    """Write each event as it comes, its workflow named ``shown_id``, and a keep-alive comment
    after ``beat`` idle seconds; return once the events end or ``closing`` is set.

    The pending read is never cancelled for a keep-alive (that would end the generator); it
    is awaited again until it yields.
    """
    pending = asyncio.create_task(_next(events))
    closed = asyncio.create_task(closing.wait())
    try:
        while True:
            done, _ = await asyncio.wait(
                {pending, closed}, timeout=beat, return_when=asyncio.FIRST_COMPLETED
            )
            if closed in done:
                return
            if not done:
                await response.write(KEEP_ALIVE)
                continue
            event = pending.result()
            if event is None:
                return
            shown = {"id": event.resume_id, **event.shown(), "wf": shown_id}  # as the id: line
            shown = tenant_event(shown) if tenant else shown
            await response.write(frame(event.kind, shown, event.resume_id))
            pending = asyncio.create_task(_next(events))
    finally:
        pending.cancel()
        closed.cancel()
        await asyncio.gather(pending, closed, return_exceptions=True)
        await events.aclose()


async def _next(events: AsyncGenerator[Event, None]) -> Event | None:
    return await anext(events, None)


def frame(kind: str, data: object, event_id: str | None = None) -> bytes:
    """One SSE frame; ``kind`` is a lifecycle name, anything else is sent as ``message``."""
    head = f"id: {event_id}\n" if event_id else ""
    name = kind if ID_PATTERN.fullmatch(kind) else "message"
    return f"{head}event: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"
