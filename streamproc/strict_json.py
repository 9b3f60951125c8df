"""JSON as users hand it in (API bodies, spec files): refused when a key repeats (the last
would silently win, as YAML specs refuse too) or an integer would not come back exactly (past
64 bits orjson makes a float of it)."""

from __future__ import annotations

import functools
import json
from typing import Any

import orjson

from streamproc.errors import SpecError

MAX_INT = 2**63 - 1  # what Redis, and every consumer of a result, takes as an integer


def loads(raw: str | bytes, where: str) -> Any:
    """``raw`` parsed by orjson, or :class:`SpecError`; ``where`` names it in a refusal
    ("the JSON body").  The standard parser runs only for the checks: orjson has no hook
    that sees each object's keys before they collapse, nor integers before they turn float."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SpecError(f"invalid JSON: {exc}") from None
    try:
        json.loads(raw, object_pairs_hook=functools.partial(_checked_pairs, where=where))
    except RecursionError:  # orjson nests deeper than Python's stack lets these checks
        raise SpecError("invalid JSON: nested too deeply") from None
    return value


def _checked_pairs(pairs: list[tuple[str, Any]], where: str) -> dict[str, Any]:
    """One object's members, refused when a key repeats or a value holds an integer past
    64 bits (nested objects were checked as they were parsed)."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise SpecError(f"duplicate key {key!r} in {where}")
        if _too_big(value):
            raise SpecError(f"the integer in {key!r} is past 64 bits (at most {MAX_INT})")
        seen[key] = value
    return seen


def _too_big(value: Any) -> bool:
    if isinstance(value, list):
        return any(_too_big(item) for item in value)
    return isinstance(value, int) and not -MAX_INT - 1 <= value <= MAX_INT
