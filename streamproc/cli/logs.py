"""Structured logs: one JSON object per line, carrying workflow, task and attempt ids.

Messages carry text from outside (agents' errors, providers' replies), so every record stays
one line whatever it holds: control characters (C0, DEL, C1 such as the 8-bit CSI ``\\x9b``),
Unicode line and paragraph separators and bidirectional overrides come out escaped, so a
message can neither forge a record nor colour or reorder a terminal.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from types import TracebackType

import orjson

from streamproc.engine.tracebacks import format_traceback

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
CONTEXT_FIELDS = ("wf", "task", "attempt", "agent", "consumer", "shard")
# Escaped in every record.  orjson escapes U+0000-U+001F itself and leaves the rest raw.
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _text_escape(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode()


class JsonFormatter(logging.Formatter):
    """JSON lines; control characters in any field come out escaped, so logs cannot be forged."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info and record.exc_info[1] is not None:
            line["exc"] = format_traceback(record.exc_info[1])
        return UNSAFE.sub(_json_escape, orjson.dumps(line, default=str).decode())


class TextFormatter(logging.Formatter):
    """Plain lines for people, with the record's ids (``%(context)s``: `` [wf=... task=...]``
    or nothing) ahead of the message, where text from outside cannot forge them; the line is
    escaped as in JSON lines.  A traceback, when one is logged, follows on lines of its own,
    escaped too and indented, so none of them can pass for a record."""

    def formatException(self, ei: ExcInfo) -> str:
        if ei[1] is None:
            return super().formatException(ei)
        lines = format_traceback(ei[1]).rstrip("\n").split("\n")
        return "\n".join("    " + UNSAFE.sub(_text_escape, line) for line in lines)

    def formatMessage(self, record: logging.LogRecord) -> str:
        ids = [(name, record.__dict__.get(name)) for name in CONTEXT_FIELDS]
        shown = " ".join(f"{name}={value}" for name, value in ids if value is not None)
        record.context = f" [{shown}]" if shown else ""
        return UNSAFE.sub(_text_escape, super().formatMessage(record))


def configure(verbosity: int, json_lines: bool) -> None:
    """Called once by the CLI; the library itself never configures logging."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        line = "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"
        handler.setFormatter(TextFormatter(line))
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, handlers=[handler], force=True)
