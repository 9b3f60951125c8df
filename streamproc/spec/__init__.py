"""Workflow specs: what a user submits (``model``), read from YAML or JSON (``reading``), each
task checked (``checks``) and the graph ordered (``dag``) before anything reaches Redis."""

from streamproc.spec.model import Limits, TaskSpec, WorkflowSpec

__all__ = ["Limits", "TaskSpec", "WorkflowSpec"]
