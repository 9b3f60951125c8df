"""A workflow's state as objects, for ``show``, ``wait`` and the API, and the names of the
states the Redis contract records: a workflow's status and a task's state (``fields.py``
reads them from the workflow hash), and those of an external API's shared limits
(``limits.py``).  The Lua functions get the same names from here (``functions.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal


class WorkflowStatus(StrEnum):
    """A workflow's ``status``: running until it completes, fails or is cancelled."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


# A workflow's last lifecycle event is named after its final status.
TERMINAL = frozenset({WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED})


class TaskStatus(StrEnum):
    """A task's state.  A published attempt is ``queued`` until its worker records that it
    began (``sp_started``), then ``running`` until its completion is applied.  ``waiting``
    is for its needs; ``awaiting`` for a signal (a declared wait, or a ``WaitFor``)."""

    WAITING = "waiting"
    QUEUED = "queued"
    RUNNING = "running"
    DELAYED = "delayed"
    AWAITING = "awaiting"  # a signal (TaskSpec.wait_for, WaitFor): no worker holds it
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    SUPERSEDED = "superseded"  # added at run time, then taken back as its adder re-ran


# Shared limits of an external API (lua/limits.lua): an admission's verdict, what a finished
# call says about the API, and the circuit breaker's state.
Verdict = Literal["go", "probe", "open", "spent", "rate"]
Health = Literal["ok", "fail", "neutral"]
Breaker = Literal["closed", "open", "half-open"]


@dataclass(frozen=True)
class TaskState:
    """One task as the engine last recorded it; times are Unix milliseconds."""

    id: str
    agent: str
    state: str  # a TaskStatus: waiting, queued, running, delayed, awaiting, done, failed, ...
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
    spawner: str = ""  # the task that added it at run time (a Spawn, or its mapped task)
    map: str = ""  # the need whose result (a list) a mapped task runs once per item of
    wait_for: str = ""  # the signal it waits or last waited for


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
    signals: list[dict[str, Any]] = field(default_factory=list)  # pending: name, id, size

    @property
    def results(self) -> dict[str, Any]:
        return {t.id: t.result for t in self.tasks if t.state == TaskStatus.DONE}

    def task_states(self) -> str:
        """``a done, b running``: each task's state, for a message."""
        return ", ".join(f"{t.id} {t.state}" for t in self.tasks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "created_ms": self.created_ms,
            "ended_ms": self.ended_ms,
            "tasks": [t.__dict__ for t in self.tasks],
            "signals": self.signals,
        }
