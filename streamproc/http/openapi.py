"""The OpenAPI 3.1 description of the HTTP API (``GET /openapi.json``), kept by hand beside
the routes in ``api.py``; a test checks that every route is listed here.

Each operation's ``security`` names the one scope it needs, and :func:`needs` hands those to
the bearer middleware; its query ``parameters`` are the only ones it takes, and :func:`queries`
hands those to ``query.py``.  So the document and what is enforced cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from streamproc.http.auth import ADMIN, OPEN, READ, SUBMIT, Needs
from streamproc.http.openapi_fleet import FLEET_PATHS
from streamproc.http.openapi_parts import (
    ERROR,
    EVENT_ID,
    ID,
    JSON,
    OBJECT,
    REASONS,
    SCHEMAS,
    STATUS,
    TEXT,
    WF,
    described_reply,
    path_param,
    refusals,
    scoped,
)
from streamproc.http.query import Taken
from streamproc.http.signals import PATHS as SIGNAL_PATHS
from streamproc.ops.listing import MAX_LIMIT, SCAN_BUDGET


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    parameter = {"name": name, "in": "query", "schema": schema}
    return {**parameter, "description": description} if description else parameter


BAD_QUERY = described_reply(REASONS[400], ERROR)  # every route's refusal of an unlisted query
EVENT = {  # one server-sent event (the schema of an event stream describes each)
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "id": {
            "type": "string",
            "pattern": EVENT_ID,
            "description": "For Last-Event-ID (an output chunk's ends with :out)",
        },
        "event": {
            **TEXT,
            "description": "The lifecycle kind, output for a chunk an agent emitted; "
            "error when the stream fails",
        },
        "data": {**TEXT, "contentMediaType": JSON, "description": "The entry's fields"},
    },
}


def _one_task(summary: str, description: str, answer: str) -> dict[str, Any]:
    """A route reading one part of one task of a workflow."""
    return {
        "get": {
            "summary": summary,
            "description": description,
            "security": scoped(READ),
            "parameters": [WF, path_param("task", "Task id")],
            "responses": {"200": described_reply(answer, {}), **refusals(400, 404)},
        }
    }


PATHS: dict[str, Any] = {
    "/healthz": {
        "get": {
            "summary": "Liveness (no auth)",
            "security": [],
            "responses": {"200": described_reply("Alive", OBJECT), "400": BAD_QUERY},
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "security": scoped(READ),
            "responses": {"200": described_reply("OpenAPI 3.1", OBJECT), **refusals()},
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics (text exposition format) of this process, all tenants",
            "security": scoped(READ),
            "responses": {
                "200": {"description": "Metrics", "content": {"text/plain": {"schema": TEXT}}},
                **refusals(),
            },
        }
    },
    "/workflows": {
        "get": {
            "summary": "Workflows newest first, a page at a time (a tenant sees its own)",
            "description": f"A page examines at most {SCAN_BUDGET} workflows, so a filtered "
            "page may hold fewer than limit with a cursor to go on; only a null cursor ends "
            "the list.",
            "security": scoped(READ),
            "parameters": [
                _query("status", STATUS),
                _query("name", TEXT, "Exact workflow name"),
                _query("since", TEXT, "Created at or after: ms since the epoch or ISO-8601"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
                _query("cursor", TEXT, "From the previous page, to continue after it"),
            ],
            "responses": {
                "200": described_reply("The page", {"$ref": "#/components/schemas/WorkflowList"}),
                **refusals(400),
            },
        },
        "post": {
            "summary": "Submit a workflow spec; idempotent on its id",
            "description": "Body: a spec {name?, tasks, adjust_rounds?, timeout?} and an "
            "optional id; without one, the Idempotency-Key header (or a new id) is used.",
            "security": scoped(SUBMIT),
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "description": "The workflow id; with an id in the body too, the two "
                    "must be equal (else 400)",
                    "schema": {"type": "string", "pattern": ID},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {JSON: {"schema": {"$ref": "#/components/schemas/Spec"}}},
            },
            "responses": {
                "201": {
                    **described_reply("Created", {"$ref": "#/components/schemas/Submitted"}),
                    "headers": {
                        "Location": {
                            "description": "/workflows/{id}, the id as the caller names it",
                            "required": True,
                            "schema": {"type": "string", "pattern": "^/workflows/"},
                        }
                    },
                },
                "200": described_reply(
                    "Already there with this spec", {"$ref": "#/components/schemas/Submitted"}
                ),
                **refusals(400, 408, 409, 413, 415, 429),
            },
        },
    },
    "/workflows/{id}": {
        "get": {
            "summary": "A workflow's state, task by task",
            "description": "A result over 64 KiB (a setting) is shown as "
            '{"elided": true, "bytes": N}: read it from /workflows/{id}/tasks/{task}/result.',
            "security": scoped(READ),
            "parameters": [WF],
            "responses": {
                "200": described_reply("The state", {"$ref": "#/components/schemas/Workflow"}),
                **refusals(400, 404),
            },
        }
    },
    "/workflows/{id}/tasks/{task}/result": _one_task(
        "One task's result, whole (null until it is done)",
        "A workflow's state elides results over 64 KiB (a setting) as "
        '{"elided": true, "bytes": N}; this reads one of them.',
        "The result, as the agent returned it",
    ),
    "/workflows/{id}/tasks/{task}/input": _one_task(
        "One task's input, as it runs (after an adjustment, the new one)",
        "A workflow's state leaves inputs out; this reads one of them.",
        "The input, as submitted (or adjusted)",
    ),
    "/workflows/{id}/events": {
        "get": {
            "summary": "Its lifecycle events and output (server-sent) from the first kept "
            "until it ends",
            "security": scoped(READ),
            "description": "A browser's EventSource, which cannot send a bearer header, "
            "passes a token from POST /workflows/{id}/events-token as ?token= instead.",
            "parameters": [
                WF,
                {
                    "name": "token",
                    "in": "query",
                    "description": "An event token for this workflow, in place of the bearer",
                    "schema": TEXT,
                },
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "schema": {"type": "string", "pattern": f"^(0|{EVENT_ID[1:-1]})$"},
                },
            ],
            "responses": {
                "200": {
                    "description": "One event a lifecycle entry or an output chunk (chunk, "
                    "format, seq, superseded), its wf as the caller names it",
                    "content": {"text/event-stream": {"schema": EVENT}},
                },
                **refusals(400, 404, 429),
            },
        }
    },
    "/workflows/{id}/events-token": {
        "post": {
            "summary": "A token opening this workflow's event stream from a URL (?token=)",
            "description": "Signed, read-only, for this workflow and caller only; never logged.",
            "security": scoped(READ),
            "parameters": [WF],
            "responses": {
                "200": described_reply("The token", {"$ref": "#/components/schemas/EventToken"}),
                **refusals(400, 404),
            },
        }
    },
    "/workflows/{id}/cancel": {
        "post": {
            "summary": "Stop a running workflow",
            "security": scoped(SUBMIT),
            "parameters": [
                WF,
                {
                    "name": "reason",
                    "in": "query",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 1000},
                },
            ],
            "responses": {
                "200": described_reply("cancelled: false when it had already ended", OBJECT),
                **refusals(400, 404),
            },
        }
    },
    **SIGNAL_PATHS,
    **FLEET_PATHS,
}

SCOPES_TEXT = (
    "A token's scopes: read (workflows, events, agents, search, metrics, this document), "
    "submit (submit, cancel, signal), admin (dead letters; operators only). A tenant token "
    "sees only its tenant's workflows, by the ids it gave them; another tenant's is 404."
)

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "streamproc", "version": "1"},
    "security": scoped(ADMIN),
    "paths": PATHS,
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": SCOPES_TEXT}
        },
        "schemas": SCHEMAS,
    },
}


def needs() -> Needs:
    """Each operation's scope, by ``(METHOD, path)``; :data:`OPEN` for ``security: []``."""
    scopes = {}
    for path, item in PATHS.items():
        for method, operation in item.items():
            security = operation.get("security", DOCUMENT["security"])
            scopes[method.upper(), path] = security[0]["bearer"][0] if security else OPEN
    return scopes


def queries() -> Taken:
    """Each operation's query parameters, by ``(METHOD, path)``: the only ones it takes."""
    return {
        (method.upper(), path): frozenset(
            parameter["name"]
            for parameter in operation.get("parameters", [])
            if parameter["in"] == "query"
        )
        for path, item in PATHS.items()
        for method, operation in item.items()
    }
