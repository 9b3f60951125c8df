"""An attempt's traceback, as its history keeps it and logs show it: the formatted stack lines
only (never a frame's locals, which may hold a key), cut to the innermost frames and a size
bound, so a deep recursion cannot bloat the history, dead letter and log line that carry it.
The exception line comes last and is kept; its text is the agent's, as in the one-line error
(provider errors scrub their keys where they are raised)."""

from __future__ import annotations

import traceback

MAX_FRAMES = 30  # innermost, per exception of a chain
MAX_LINE_CHARS = 500  # a huge message must not crowd out the frames
MAX_TRACEBACK_CHARS = 6000
CUT = "... (outer lines cut)"


def format_traceback(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc, limit=-MAX_FRAMES))
    lines = [_capped(line) for line in text.rstrip("\n").split("\n")]
    size = len(CUT) + 1
    kept: list[str] = []
    for line in reversed(lines):
        size += len(line) + 1
        if size > MAX_TRACEBACK_CHARS:
            return "\n".join([CUT, *reversed(kept)]) + "\n"
        kept.append(line)
    return "\n".join(lines) + "\n"


def _capped(line: str) -> str:
    return line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + " ..."
