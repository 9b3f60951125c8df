"""Payloads as JSON (task inputs, results, signal payloads, emitted chunks), refused rather
than changed.

orjson writes a float that is NaN or infinite as ``null``, silently: a task would receive
``null`` where its producer sent NaN.  JSON has no such numbers, so they are refused here, as
Python's ``json`` does with ``allow_nan=False``, through the error orjson raises for what it
cannot encode, which every caller already handles.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import orjson


def dumps_payload(value: Any) -> bytes:
    """``value`` as JSON, or :class:`orjson.JSONEncodeError` (a :class:`TypeError`)."""
    encoded = orjson.dumps(value)
    if encoded.find(b"null") >= 0:  # (find: ``in`` costs twice as much on bytes)
        refuse_non_finite(value)
    return encoded


def refuse_non_finite(value: Any) -> None:
    """:class:`orjson.JSONEncodeError` when ``value``, encoded with a null, holds NaN or
    Infinity; only then can one hide there."""
    if _holds_non_finite(value):
        raise orjson.JSONEncodeError("NaN and Infinity are not JSON numbers")


def _holds_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_holds_non_finite(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_non_finite(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(_holds_non_finite(getattr(value, f.name)) for f in dataclasses.fields(value))
    return False
