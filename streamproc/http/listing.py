"""``GET /workflows``: the workflows a caller may see, newest first, a page at a time
(``ops/listing.py``).  A tenant's page holds its own workflows only, by the ids it gave them:
the listing filters on its ``<tenant>.`` prefix before reading any hash."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler
from redis.asyncio import Redis

from streamproc.errors import SpecError
from streamproc.http.auth import GRANT
from streamproc.http.errors import reply
from streamproc.ops.listing import DEFAULT_LIMIT, MAX_LIMIT, Query, list_workflows, parse_since
from streamproc.store.keys import Keyspace

PARAMETERS = ("status", "name", "since", "limit", "cursor")  # as openapi.py lists them


def query_of(request: web.Request) -> Query:
    """The listing ``request`` asks for; a bad value is a one-line ``SpecError`` (an unknown
    or repeated parameter never gets here: ``query.py``).  An empty parameter
    (``?status=&name=``) filters on nothing, as if it were left out."""
    params = request.query
    given = {name: params[name] for name in PARAMETERS if params.get(name)}  # "": not given
    limit = given.get("limit", str(DEFAULT_LIMIT))
    if not limit.isdigit():  # "-1" too: not digits
        raise SpecError(f"invalid limit {limit!r}: use a whole number from 1 to {MAX_LIMIT}")
    since = given.get("since")
    tenant = request[GRANT].tenant
    return Query(
        status=given.get("status"),
        name=given.get("name"),
        since=None if since is None else parse_since(since),
        limit=int(limit),
        cursor=given.get("cursor"),
        prefix="" if tenant is None else f"{tenant}.",
    )


def list_route(redis: Redis, keyspace: Keyspace) -> Handler:
    """The handler of ``GET /workflows`` over the workflows of ``redis`` and ``keyspace``."""

    async def list_page(request: web.Request) -> web.Response:
        query, grant = query_of(request), request[GRANT]
        page = (await list_workflows(redis, keyspace, query)).to_dict()
        for workflow in page["workflows"]:
            workflow["id"] = grant.shown_id(workflow["id"])
        return reply(page)

    return list_page
