"""streamproc: agentic AI workflows (DAGs of agent tasks) on Redis Streams."""

from streamproc.client import Client
from streamproc.config import (
    AutoscaleSettings,
    ClientSettings,
    RedisSettings,
    ResolverSettings,
    WorkerSettings,
)
from streamproc.errors import (
    CodecError,
    ConfigError,
    Conflict,
    NotFound,
    PermanentError,
    RetryLater,
    SpecError,
    StreamprocError,
    WaitFor,
    WorkflowConflict,
    WorkflowNotFound,
)
from streamproc.registry import Adjust, Spawn, Task, agent
from streamproc.spec import Limits, TaskSpec, WorkflowSpec
from streamproc.store.keys import Keyspace
from streamproc.store.state import TaskState, WorkflowState
from streamproc.sync_client import SyncClient

__all__ = [
    "Adjust",
    "AutoscaleSettings",
    "Client",
    "ClientSettings",
    "CodecError",
    "ConfigError",
    "Conflict",
    "Keyspace",
    "Limits",
    "NotFound",
    "PermanentError",
    "RedisSettings",
    "ResolverSettings",
    "RetryLater",
    "Spawn",
    "SpecError",
    "StreamprocError",
    "SyncClient",
    "Task",
    "TaskSpec",
    "TaskState",
    "WaitFor",
    "WorkerSettings",
    "WorkflowConflict",
    "WorkflowNotFound",
    "WorkflowSpec",
    "WorkflowState",
    "agent",
]
