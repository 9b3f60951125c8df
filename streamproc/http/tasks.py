"""The routes reading one task of a workflow on its own: its result, whole (a workflow's state
elides large ones), and its input (a state leaves inputs out).  The dashboard's task details
read both."""

from __future__ import annotations

from aiohttp import web

from streamproc.client import Client
from streamproc.http.auth import GRANT
from streamproc.http.errors import named_as, reply
from streamproc.ops.results import task_input, task_result

RESULT = "/workflows/{id}/tasks/{task}/result"
INPUT = "/workflows/{id}/tasks/{task}/input"


def task_routes(client: Client) -> list[web.RouteDef]:
    async def show_result(request: web.Request) -> web.Response:
        given = request.match_info["id"]
        with named_as(given):
            state = await client.get(request[GRANT].stored_id(given))
        return reply(task_result(state, request.match_info["task"], given))

    async def show_input(request: web.Request) -> web.Response:
        given, task = request.match_info["id"], request.match_info["task"]
        stored = request[GRANT].stored_id(given)
        return reply(await task_input(client.redis, client.keyspace, stored, task, given))

    return [web.get(RESULT, show_result), web.get(INPUT, show_input)]
