"""Request bodies as the API takes them: one JSON object, read within the size limit and
parsed strictly (``spec.loads_json``), and the workflow id its caller chose (in the body or
one Idempotency-Key header)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from streamproc.errors import SpecError
from streamproc.spec.reading import loads_json
from streamproc.store.ids import check_id, new_workflow_id

IDEMPOTENCY_KEY = "Idempotency-Key"


async def read_json(request: web.Request, limit: int, timeout: float, what: str) -> bytes:
    """The body, sent as JSON (``what`` names it in a refusal); a declared size over ``limit``
    is refused before reading (aiohttp refuses an undeclared one while reading), and one still
    arriving after ``timeout`` seconds is refused with 408 (aiohttp bounds no read: a client
    trickling a byte a second would hold its connection and handler for as long as it liked)."""
    size = request.content_length or 0
    if size > limit:
        raise web.HTTPRequestEntityTooLarge(
            limit, size, text=f"body of {size} bytes is over {limit}"
        )
    if request.content_type != "application/json" and not request.content_type.endswith("+json"):
        raise web.HTTPUnsupportedMediaType(text=f"send {what} as application/json")
    try:
        async with asyncio.timeout(timeout):
            return await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(
            text=f"the body took over {timeout:g} seconds to arrive",
            headers={"Connection": "close"},
        ) from None


async def json_object(request: web.Request, limit: int, timeout: float) -> dict[str, Any]:
    """The body as a JSON object (:func:`read_json`)."""
    raw = await read_json(request, limit, timeout, "the workflow spec")
    body = loads_json(raw, "the JSON body")
    if not isinstance(body, dict):
        raise SpecError("the body must be a JSON object: a workflow spec")
    return body


def one_header(request: web.Request, name: str) -> str | None:
    """The request's ``name`` header, None without one; 400 when it comes twice, since
    taking either would surprise the caller who meant the other."""
    values = request.headers.getall(name, [])
    if len(values) > 1:
        raise web.HTTPBadRequest(text=f"the {name} header given {len(values)} times: send one")
    return values[0] if values else None


def chosen_id(body: dict[str, Any], header: str | None) -> str:
    """The id the caller gave, popped from the body, or the Idempotency-Key header (a new
    one when neither).  An empty one, or one that is no string, is refused rather than
    replaced; two that differ are refused, since either answer would surprise one caller."""
    in_body = "id" in body
    given = body.pop("id") if in_body else header
    if given is None and not in_body:
        return new_workflow_id()
    where = "the body's id" if in_body else "the Idempotency-Key header"
    if not isinstance(given, str) or not given:
        raise SpecError(f"invalid workflow id {given!r} in {where}: use a non-empty string")
    check_id("workflow id", given, where)
    if header is not None and given != header:
        raise SpecError(
            f"the Idempotency-Key header {header!r} and the body's id {given!r} differ: send one"
        )
    return given
