"""Query parameters: a route takes those its OpenAPI operation lists (``openapi.py``), one
value each, and a request bringing any other, or one twice, is refused with 400 before its
handler runs.

Ignoring a parameter nobody reads is how a typo does harm: ``POST /dead/{agent}/purge?befor=1-0``
would purge every dead letter of the agent, not those before ``1-0``.  Reading the names from
the document means a route cannot take a parameter the document does not describe.  A route
the table does not list (the dashboard's files) takes none.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from multidict import MultiMapping

from streamproc.http.auth import route_key

Taken = Mapping[tuple[str, str], frozenset[str]]  # (METHOD, path template) -> parameter names


def known_query(taken: Taken) -> Middleware:
    """Middleware refusing a query parameter the request's route does not take (``taken``)."""

    @web.middleware
    async def check_query(request: web.Request, handler: Handler) -> web.StreamResponse:
        key = route_key(request)
        if key is not None:  # no route matched: its 404 or 405 says enough
            refuse_unknown(request.query, taken.get(key, frozenset()))
        return await handler(request)

    return check_query


def refuse_unknown(query: MultiMapping[str], names: frozenset[str]) -> None:
    """400 naming the first parameter of ``query`` that is not in ``names``, or given twice."""
    unknown = sorted(set(query) - names)
    if unknown:
        use = f"use {', '.join(sorted(names))}" if names else "this route takes none"
        raise web.HTTPBadRequest(text=f"unknown parameter {unknown[0]!r}: {use}")
    repeated = sorted(name for name in set(query) if len(query.getall(name)) > 1)
    if repeated:
        raise web.HTTPBadRequest(text=f"parameter {repeated[0]!r} given more than once")
