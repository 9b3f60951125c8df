"""Output chunks: what ``Task.emit`` writes to a workflow's output stream, and its bounds.

An entry is ``v, kind=output, wf, task, att, at, seq, format, chunk``: the chunk as JSON, its
``format`` ``text`` for a str and ``json`` for any other value, and ``seq`` its place among the
chunks of its attempt.  The stream keeps about ``OUTPUT_MAXLEN`` entries (XADD MAXLEN ~) and
expires with the workflow (``expire`` in ``lua/engine/common.lua``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from streamproc.errors import EmitRefused
from streamproc.store.codec import VERSION
from streamproc.store.entries import EntryField as EF
from streamproc.store.entries import EventKind
from streamproc.store.payloads import dumps_payload

MAX_CHUNK_BYTES = 64 * 1024  # one chunk, as JSON
MAX_CHUNKS = 10_000  # per task attempt
OUTPUT_MAXLEN = 10_000  # entries an output stream keeps (approximately)
# Until its workflow ends and gives it the workflow's ttl, an output stream expires this long
# after its first chunk: the longest a workflow may run (7 days) plus the default ttl, so a
# chunk written after its workflow ended (a cancelled workflow's running task) never lingers.
UNENDED_TTL_MS = 14 * 24 * 3600 * 1000
TEXT, JSON = "text", "json"


@dataclass(frozen=True, slots=True)
class Chunk:
    """A chunk checked and encoded, ready to be written."""

    format: str
    data: bytes


def encode_chunk(chunk: Any) -> Chunk:
    """``chunk`` as JSON, or :class:`EmitRefused` saying why it cannot be emitted."""
    try:
        data = dumps_payload(chunk)
    except orjson.JSONEncodeError as exc:
        raise EmitRefused(f"chunk is not JSON-serialisable: {exc}") from None
    if len(data) > MAX_CHUNK_BYTES:
        raise EmitRefused(
            f"chunk too large: {len(data)} bytes as JSON, over the {MAX_CHUNK_BYTES}-byte bound"
        )
    return Chunk(TEXT if isinstance(chunk, str) else JSON, data)


def chunk_fields(
    workflow: str, task: str, attempt: int, seq: int, at_ms: int, chunk: Chunk
) -> dict[bytes, bytes | str | int]:
    """The output stream entry of ``chunk``."""
    return {
        EF.V.key: VERSION,
        EF.KIND.key: EventKind.OUTPUT.value,
        EF.WF.key: workflow,
        EF.TASK.key: task,
        EF.ATT.key: attempt,
        EF.AT.key: at_ms,
        EF.SEQ.key: seq,
        EF.FORMAT.key: chunk.format,
        EF.CHUNK.key: chunk.data,
    }
