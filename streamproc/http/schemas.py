"""The schemas of the OpenAPI document's bodies (``components.schemas``, and one server-sent
event), apart from its paths (``openapi.py``)."""

from __future__ import annotations

from typing import Any

from streamproc.http.auth import ADMIN, READ, SUBMIT
from streamproc.spec import MAX_ADJUST_ROUNDS, MAX_TIMEOUT
from streamproc.store.state import TaskStatus

JSON = "application/json"
ID = "^[A-Za-z0-9_.-]{1,128}$"
ENTRY_ID = "^[0-9]{1,20}-[0-9]{1,20}$"
TEXT = {"type": "string"}
EVENT = {  # one server-sent event (the schema of an event stream describes each)
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "id": {"type": "string", "pattern": ENTRY_ID, "description": "For Last-Event-ID"},
        "event": {**TEXT, "description": "The lifecycle kind; error when the stream fails"},
        "data": {**TEXT, "contentMediaType": JSON, "description": "The entry's fields"},
    },
}

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
            "tasks": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["id", "agent"],
                    "additionalProperties": False,
                    "properties": {
                        "id": {"type": "string", "pattern": ID},
                        "agent": {"type": "string", "pattern": ID},
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
    "Workflow": {
        "type": "object",
        "required": ["id", "name", "status", "reason", "created_ms", "ended_ms", "tasks"],
        "properties": {
            "id": {"type": "string", "pattern": ID},
            "name": TEXT,
            "status": {"enum": ["running", "completed", "failed", "cancelled"]},
            "reason": TEXT,
            "created_ms": {"type": "integer"},
            "ended_ms": {"type": ["integer", "null"]},
            "tasks": {"type": "array", "items": {"$ref": "#/components/schemas/Task"}},
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
        },
    },
}
