"""Reading an OpenAI-compatible streamed chat completion (``"stream": true``).

The reply is server-sent events, one ``data: {json}`` line each, the new text at
``choices[0].delta.content`` (absent in the first, role-only, chunk and in the last), ending
with ``data: [DONE]``; other lines (comments, blank separators) are skipped.  Each piece of
text goes to ``emit`` as it arrives, and the whole text is returned.

A failure once text went out must not be retried (the emitted text would come twice): a
broken connection then is a plain :class:`ProviderError`, not :class:`Unavailable`; before
any text, it stays what the exchange makes of it (retried).  A chunk that is not JSON, or
holds no text where text belongs, is :class:`MalformedReply`, and so is a stream that ends
without ``[DONE]`` (truncated).  Past what ``emit`` accepts (``EmitRefused``: a task's chunk
count), the rest of the answer is still read and returned, only no longer emitted.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Awaitable, Callable

import aiohttp
import orjson

from streamproc.errors import EmitRefused, MalformedReply, ProviderError
from streamproc.outbound.providers.base import dig

log = logging.getLogger(__name__)
Emit = Callable[[str], Awaitable[None]]
DONE = b"[DONE]"


async def read_deltas(
    provider: str, lines: AsyncIterable[bytes], emit: Emit, scrub: Callable[[str], str]
) -> str:
    """The streamed answer's text, each piece emitted as it arrives.  ``scrub`` cleans an
    error message the server sends (of a key it may echo)."""
    parts: list[str] = []
    emitting, number = True, 0
    try:
        async for line in lines:
            data = line.strip()
            if not data.startswith(b"data:"):
                continue
            data = data.removeprefix(b"data:").strip()
            if data == DONE:
                return "".join(parts)
            number += 1
            text = _delta(provider, data, number, scrub)
            if not text:
                continue
            parts.append(text)
            if emitting:
                try:
                    await emit(text)
                except EmitRefused as exc:
                    log.warning("%s: answer no longer emitted: %s", provider, exc)
                    emitting = False
    except (TimeoutError, aiohttp.ClientError) as exc:
        if not parts:
            raise
        broken = type(exc).__name__
    else:
        got = sum(map(len, parts))
        raise MalformedReply(provider, f"stream ended without [DONE] after {got} characters")
    # Raised out here, so aiohttp's exception (and its URL) is not kept as the context.
    got = sum(map(len, parts))
    raise ProviderError(provider, f"stream broken after {got} characters ({broken})")


def _delta(provider: str, data: bytes, number: int, scrub: Callable[[str], str]) -> str:
    """The text of one chunk ("" for none), or why the chunk is unusable."""
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise MalformedReply(provider, f"stream chunk {number} is not JSON") from None
    error = dig(chunk, "error", "message")
    if isinstance(error, str):
        raise ProviderError(provider, f"stream failed: {scrub(error)[:300]}")
    if not isinstance(dig(chunk, "choices", 0), dict):
        raise MalformedReply(provider, f"stream chunk {number} has no choices[0]")
    text = dig(chunk, "choices", 0, "delta", "content")
    if text is not None and not isinstance(text, str):
        raise MalformedReply(provider, f"stream chunk {number} has a non-string delta.content")
    return text or ""
