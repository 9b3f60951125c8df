"""Structured logs: one JSON object per line, carrying workflow, task and attempt ids."""

from __future__ import annotations

import logging
import sys
import time

import orjson

CONTEXT_FIELDS = ("wf", "task", "attempt", "agent", "consumer", "shard")


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
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure(verbosity: int, json_lines: bool) -> None:
    """Called once by the CLI; the library itself never configures logging."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, handlers=[handler], force=True)
