"""The pieces the OpenAPI document (``openapi.py``) is built of: the schemas of its bodies, and
how an operation's replies and refusals are described."""

from __future__ import annotations

from typing import Any

from streamproc.http.auth import ADMIN, READ, SUBMIT
from streamproc.spec.checks import MAX_TIMEOUT
from streamproc.spec.model import MAX_ADJUST_ROUNDS
from streamproc.store.state import TaskStatus, WorkflowStatus

ID = "^[A-Za-z0-9_.-]{1,128}$"
STATUS = {"enum": [status.value for status in WorkflowStatus]}
OBJECT = {"type": "object"}
OBJECTS = {"type": "array", "items": OBJECT}
TEXT = {"type": "string"}
JSON = "application/json"
ERROR = {"$ref": "#/components/schemas/Error"}
CHALLENGE = {
    "WWW-Authenticate": {
        "description": "Bearer challenge (RFC 6750), with error= and scope= when refused",
        "required": True,
        "schema": {"type": "string", "pattern": "^Bearer "},
    }
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before opening another event stream",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}
REASONS = {
    400: "Bad input (invalid id, spec or JSON, or a query parameter the operation does not "
    "list, or one given twice)",
    401: "Missing or invalid bearer token",
    403: "The token lacks the scope this operation needs (named in 'scope')",
    404: "No such workflow, task or dead letter (a tenant sees its own workflows only)",
    409: "Conflict",
    408: "Body still arriving after the body timeout",
    413: "Body over the size limit",
    415: "Body is not JSON",
    429: "A limit reached (event streams open; for a submit, the tenant's workflows in flight "
    "or bytes stored): retry after Retry-After",
    503: "Redis unavailable, or it lost its data",
}


# "." and ".." are ids too, but as a path segment they are a URL's dot segments, which clients
# and servers resolve away: no path can name them.
SEGMENT = r"^(?!\.{1,2}$)[A-Za-z0-9_.-]{1,128}$"
ENTRY_ID = "^[0-9]{1,20}-[0-9]{1,20}$"
EVENT_ID = "^[0-9]{1,20}-[0-9]{1,20}(:out)?$"  # an entry id; an output chunk's marked


def scoped(scope: str) -> list[dict[str, list[str]]]:
    return [{"bearer": [scope]}]


def path_param(name: str, description: str, pattern: str = SEGMENT) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": pattern},
    }


WF = path_param("id", "Workflow id (a tenant's own, without its tenant)")


def described_reply(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {JSON: {"schema": schema}}}


def refusals(*codes: int) -> dict[str, Any]:
    """The refusals an operation may answer: ``codes``, and those of any route behind the
    bearer check (400 for its query, 401, 403, 503)."""
    shared = (*codes, 400, 401, 403, 503)
    replies = {str(code): described_reply(REASONS[code], ERROR) for code in shared}
    for code in ("401", "403"):
        replies[code]["headers"] = CHALLENGE
    if "429" in replies:
        replies["429"]["headers"] = RETRY_AFTER
    return replies


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": TEXT,
            "task": {**TEXT, "description": "The task a spec error names"},
            "reason": {**TEXT, "description": "Why a requeue was refused"},
            "scope": {"enum": [READ, SUBMIT, ADMIN], "description": "The scope needed"},
        },
    },
    "Submitted": {
        "type": "object",
        "required": ["id"],
        "properties": {"id": {"type": "string", "pattern": ID}},
    },
    "EventToken": {
        "type": "object",
        "required": ["token", "expires_in"],
        "properties": {
            "token": TEXT,
            "expires_in": {"type": "integer", "description": "Seconds it stays valid"},
        },
    },
    "Spec": {
        "type": "object",
        "required": ["tasks"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "pattern": ID},
            "name": TEXT,
            "adjust_rounds": {
                "type": "integer",
                "minimum": 0,
                "maximum": MAX_ADJUST_ROUNDS,
            },
            "timeout": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": MAX_TIMEOUT,
                "description": "Seconds the whole run may take; then it fails",
            },
            "tasks": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["id"],
                    "additionalProperties": False,
                    "description": "Runs its agent, or, with wait_for and no agent, waits",
                    "properties": {
                        "id": {"type": "string", "pattern": ID},
                        "agent": {"type": "string", "pattern": ID},
                        "wait_for": {
                            "type": "string",
                            "pattern": ID,
                            "description": "A signal: the task waits for it (at most its "
                            "timeout) and takes its payload as its result",
                        },
                        "default": {"description": "A wait's result on timeout (not null)"},
                        "input": {},
                        "needs": {"type": "array", "items": {"type": "string"}},
                        "retries": {"type": "integer", "minimum": 0, "maximum": 1000},
                        "timeout": {
                            "type": "number",
                            "exclusiveMinimum": 0,
                            "maximum": MAX_TIMEOUT,
                        },
                        "map": {
                            "type": "string",
                            "pattern": ID,
                            "description": "One of its needs, whose result is a list: "
                            "the task runs once per item, as tasks <id>[0], <id>[1]..., "
                            'each with input {"item": <item>, ...its input}, and its '
                            "result is the list of theirs",
                        },
                    },
                },
            },
        },
    },
    "WorkflowList": {
        "type": "object",
        "required": ["workflows", "cursor"],
        "properties": {
            "workflows": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/WorkflowSummary"},
            },
            "cursor": {"type": ["string", "null"], "description": "Opaque; null: no more"},
        },
    },
    "WorkflowSummary": {
        "type": "object",
        "required": ["id", "name", "status", "created", "ended", "tasks", "reason"],
        "properties": {
            "id": {"type": "string", "pattern": ID},
            "name": TEXT,
            "status": STATUS,
            "created": {"type": "integer", "description": "ms since the epoch"},
            "ended": {"type": ["integer", "null"]},
            "tasks": {
                "type": "object",
                "required": ["total", "done", "failed", "running", "queued"],
                "additionalProperties": {"type": "integer"},
                "description": "total, then the count of tasks in each state",
            },
            "reason": TEXT,
        },
    },
    "Workflow": {
        "type": "object",
        "required": ["id", "name", "status", "reason", "created_ms", "ended_ms", "tasks"],
        "properties": {
            "id": {"type": "string", "pattern": ID},
            "name": TEXT,
            "status": STATUS,
            "reason": TEXT,
            "created_ms": {"type": "integer"},
            "ended_ms": {"type": ["integer", "null"]},
            "tasks": {"type": "array", "items": {"$ref": "#/components/schemas/Task"}},
            "signals": {
                "type": "array",
                "description": "Signals kept for a wait not begun: name, id, size (bytes)",
                "items": OBJECT,
            },
        },
    },
    "Task": {
        "type": "object",
        "required": ["id", "agent", "state", "attempt", "needs"],
        "properties": {
            "id": {
                "type": "string",
                "description": "As declared, spawned, or <task>[i] for an instance of "
                "a mapped task",
            },
            "agent": TEXT,
            "state": {"enum": [str(state) for state in TaskStatus]},
            "attempt": {"type": "integer"},
            "needs": {"type": "array", "items": {"type": "string"}},
            "result": {},
            "spawner": {
                "type": "string",
                "description": "The task that added it at run time (a Spawn, or the "
                "mapped task of an instance); empty for a declared task",
            },
            "map": {"type": "string", "description": "The need a mapped task maps over"},
            "wait_for": {
                "type": "string",
                "description": "The signal it waits (awaiting) or last waited for",
            },
        },
    },
}
