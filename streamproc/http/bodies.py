"""Request bodies as the API takes them: one JSON object, read within the size limit, with
no duplicate keys (the last would silently win, as YAML specs refuse too) and no integer that
would not come back exactly (past 64 bits orjson makes a float of it), and the workflow id
its caller chose."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
from aiohttp import web

from streamproc.errors import SpecError
from streamproc.store.keys import new_workflow_id

MAX_INT = 2**63 - 1  # what Redis, and every consumer of a result, takes as an integer


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
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SpecError(f"invalid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise SpecError("the body must be a JSON object: a workflow spec")
    json.loads(raw, object_pairs_hook=checked_pairs)  # valid JSON: only these checks raise
    return body


def checked_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """One object's members, refused when a key repeats or a value holds an integer past
    64 bits (nested objects were checked as they were parsed)."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise SpecError(f"duplicate key {key!r} in the JSON body")
        if too_big(value):
            raise SpecError(f"the integer in {key!r} is past 64 bits (at most {MAX_INT})")
        seen[key] = value
    return seen


def too_big(value: Any) -> bool:
    if isinstance(value, list):
        return any(too_big(item) for item in value)
    return isinstance(value, int) and not -MAX_INT - 1 <= value <= MAX_INT


def chosen_id(body: dict[str, Any], header: str | None) -> str:
    """The id the caller gave, popped from the body, or the Idempotency-Key header (a new
    one when neither).  An empty one, or one that is no string, is refused rather than
    replaced; two that differ are refused, since either answer would surprise one caller."""
    in_body = "id" in body
    given = body.pop("id") if in_body else header
    if given is None and not in_body:
        return new_workflow_id()
    if not isinstance(given, str) or not given:
        shown = "the body's id" if in_body else "the Idempotency-Key header"
        raise SpecError(f"invalid workflow id {given!r} in {shown}: use a non-empty string")
    if header is not None and given != header:
        raise SpecError(
            f"the Idempotency-Key header {header!r} and the body's id {given!r} differ: send one"
        )
    return given
