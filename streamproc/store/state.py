"""Reading a workflow's state hash back into objects, for ``show``, ``wait`` and the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(frozen=True)
class TaskState:
    """One task as the engine last recorded it; times are Unix milliseconds."""

    id: str
    agent: str
    state: str  # waiting, queued, running, delayed, done, failed or skipped
    attempt: int
    failures: int
    lost: int
    needs: list[str]
    result: Any = None
    error: str = ""
    queued_ms: int | None = None
    began_ms: int | None = None
    ended_ms: int | None = None
    consumer: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    entry: str = ""  # the task's current entry in its agent's stream


@dataclass(frozen=True)
class WorkflowState:
    """A workflow: running, completed, failed or cancelled (``reason`` says why), and its tasks."""

    id: str
    name: str
    status: str
    reason: str
    created_ms: int
    ended_ms: int | None
    tasks: list[TaskState]

    @property
    def results(self) -> dict[str, Any]:
        return {t.id: t.result for t in self.tasks if t.state == "done"}

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "created_ms": self.created_ms,
            "ended_ms": self.ended_ms,
            "tasks": [t.__dict__ for t in self.tasks],
        }


def parse_state(workflow_id: str, raw: dict[bytes, bytes]) -> WorkflowState:
    fields = {k.decode(): v for k, v in raw.items()}

    def text(name: str) -> str:
        return fields.get(name, b"").decode(errors="replace")

    def number(name: str) -> int | None:
        value = fields.get(name)
        return int(value) if value else None

    tasks = []
    for task_id in text("order").split():
        result = fields.get(f"r:{task_id}")
        tasks.append(
            TaskState(
                id=task_id,
                agent=text(f"g:{task_id}"),
                state=text(f"s:{task_id}"),
                attempt=number(f"a:{task_id}") or 1,
                failures=number(f"f:{task_id}") or 0,
                lost=number(f"k:{task_id}") or 0,
                needs=text(f"n:{task_id}").split(),
                result=orjson.loads(result) if result is not None else None,
                error=text(f"e:{task_id}"),
                queued_ms=number(f"q:{task_id}"),
                began_ms=number(f"b:{task_id}"),
                ended_ms=number(f"z:{task_id}"),
                consumer=text(f"w:{task_id}"),
                history=orjson.loads(fields.get(f"h:{task_id}", b"[]")),
                entry=text(f"m:{task_id}"),
            )
        )
    return WorkflowState(
        id=workflow_id,
        name=text("name"),
        status=text("status"),
        reason=text("reason"),
        created_ms=number("created") or 0,
        ended_ms=number("ended"),
        tasks=tasks,
    )
