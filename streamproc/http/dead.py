"""The dead-letter routes (admin scope; every tenant's): list an agent's, show one, requeue one
(its workflow resumes), purge one, or purge all of an agent's (those before an entry id, when
given).  Each turns the ops library's answers and refusals into replies."""

from __future__ import annotations

from aiohttp import web

from streamproc.client import Client
from streamproc.http.errors import reply
from streamproc.ops import deadletters
from streamproc.ops.events import OUTPUT_MARK, is_position
from streamproc.store.ids import check_id

AGENT = "/dead/{agent}"
ENTRY = "/dead/{agent}/{entry_id}"


def dead_routes(client: Client) -> list[web.RouteDef]:
    redis, keyspace = client.redis, client.keyspace

    async def listed(request: web.Request) -> web.Response:
        agent = check_id("agent name", request.match_info["agent"])
        return reply([d.summary() for d in await deadletters.list_dead(redis, keyspace, agent)])

    async def shown(request: web.Request) -> web.Response:
        agent, entry_id = dead_address(request)
        return reply((await deadletters.find_dead(redis, keyspace, agent, entry_id)).to_dict())

    async def requeued(request: web.Request) -> web.Response:
        agent, entry_id = dead_address(request)
        dead = await deadletters.requeue(redis, keyspace, agent, entry_id)
        return reply({"requeued": entry_id, "workflow": dead.workflow, "task": dead.task})

    async def purged_one(request: web.Request) -> web.Response:
        agent, entry_id = dead_address(request)
        dead = await deadletters.purge_one(redis, keyspace, agent, entry_id)
        return reply({"purged": entry_id, "workflow": dead.workflow, "task": dead.task})

    async def purged_all(request: web.Request) -> web.Response:
        agent = check_id("agent name", request.match_info["agent"])
        before = request.query.get("before")
        if before is not None:
            checked_entry_id(before)
        return reply({"purged": await deadletters.purge(redis, keyspace, agent, before)})

    return [
        web.get(AGENT, listed),
        web.post(f"{AGENT}/purge", purged_all),
        web.get(ENTRY, shown),
        web.delete(ENTRY, purged_one),
        web.post(f"{ENTRY}/requeue", requeued),
    ]


def dead_address(request: web.Request) -> tuple[str, str]:
    entry_id = checked_entry_id(request.match_info["entry_id"])
    return check_id("agent name", request.match_info["agent"]), entry_id


def checked_entry_id(entry_id: str) -> str:
    if "-" not in entry_id or OUTPUT_MARK in entry_id or not is_position(entry_id):
        raise web.HTTPBadRequest(text=f"invalid entry id {entry_id!r}: use ms-seq")
    return entry_id
