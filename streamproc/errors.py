"""The exceptions streamproc raises, rooted at :class:`StreamprocError`."""

from __future__ import annotations


class StreamprocError(Exception):
    """Root of every error streamproc raises on purpose."""


class SpecError(StreamprocError, ValueError):
    """A workflow spec was refused; ``task`` names the offending task when there is one."""

    def __init__(self, message: str, task: str | None = None) -> None:
        super().__init__(message)
        self.task = task


class WorkflowConflict(StreamprocError):
    """A workflow id was submitted again with a different spec."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"workflow {workflow_id!r} already exists with a different spec")
        self.workflow_id = workflow_id


class WorkflowNotFound(StreamprocError, LookupError):
    """No workflow has this id (never submitted, or expired by retention)."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"workflow {workflow_id!r} not found")
        self.workflow_id = workflow_id


class CodecError(StreamprocError, ValueError):
    """A stream entry could not be decoded; ``fields`` keeps the raw entry for dead letters."""

    def __init__(self, reason: str, fields: dict[bytes, bytes]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fields = fields


class ConfigError(StreamprocError, ValueError):
    """A setting, an agent registration or the Redis server itself is unusable."""


class PermanentError(StreamprocError):
    """Raised by an agent for a failure that no retry can fix: the task is dead-lettered at once."""
