"""What a worker's outbox writes: reports, finished tasks and starts, gathered per shard into
the batch one transaction writes, and how reports are queued on that transaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from streamproc.store import calls
from streamproc.store.codec import Completion
from streamproc.store.functions import is_missing_library


class Report(NamedTuple):
    """One write: XADD ``fields`` to ``target`` and XACK ``entry_id`` from ``stream`` (both
    keys of ``shard``).  A named tuple: one is made per task."""

    shard: int
    stream: str
    group: str
    entry_id: bytes
    target: str
    fields: Mapping[bytes, bytes | str | int]


class Finished(NamedTuple):
    """The completion of a task entry of ``stream``, a stream of ``shard``."""

    shard: int
    stream: str
    completion: Completion


@dataclass(slots=True)
class Batch:
    """What one shard's transaction writes."""

    reports: list[Report] = field(default_factory=list)
    finished: list[Finished] = field(default_factory=list)
    starts: list[tuple[str, calls.Start]] = field(default_factory=list)  # (its stream, start)
    covered: list[tuple[str, calls.Start]] = field(default_factory=list)  # finished here

    def __len__(self) -> int:
        return len(self.reports) + len(self.finished) + len(self.starts) + len(self.covered)


def queue_reports(pipe: Pipeline, reports: list[Report]) -> None:
    """Queue the XADD of each report, then the XACKs of the entries they answer."""
    acks: dict[tuple[str, str], list[bytes]] = {}
    for report in reports:
        pipe.xadd(report.target, report.fields)  # type: ignore[arg-type]
        acks.setdefault((report.stream, report.group), []).append(report.entry_id)
    for (stream, group), ids in acks.items():
        pipe.xack(stream, group, *ids)


def missing_library(reply: object) -> bool:
    """Redis lost the engine's functions (flushed): the rest of the transaction still ran."""
    return isinstance(reply, ResponseError) and is_missing_library(reply)
