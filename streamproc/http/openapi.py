"""The OpenAPI 3.1 description of the HTTP API (``GET /openapi.json``), kept by hand beside
the routes in ``api.py``; a test checks that every route is listed here.

Each operation's ``security`` names the one scope it needs, and :func:`needs` hands those to
the bearer middleware, so the document and what is enforced cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from streamproc.http.auth import ADMIN, OPEN, READ, SUBMIT, Needs
from streamproc.http.schemas import ENTRY_ID, EVENT, ID, JSON, SCHEMAS, TEXT

ERROR = {"$ref": "#/components/schemas/Error"}
# "." and ".." are ids too, but as a path segment they are a URL's dot segments, which clients
# and servers resolve away: no path can name them.
SEGMENT = r"^(?!\.{1,2}$)[A-Za-z0-9_.-]{1,128}$"
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
    400: "Bad input (invalid id, spec or JSON)",
    401: "Missing or invalid bearer token",
    403: "The token lacks the scope this operation needs (named in 'scope')",
    404: "No such workflow, task or dead letter (a tenant sees its own workflows only)",
    409: "Conflict",
    408: "Body still arriving after the body timeout",
    413: "Body over the size limit",
    415: "Body is not JSON",
    429: "Too many event streams open for this token or tenant: retry after Retry-After",
    503: "Redis unavailable, or it lost its data",
}


def _reply(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    """The refusals an operation may answer: ``codes``, and those of any route behind the
    bearer check (401, 403, 503)."""
    replies = {str(code): _reply(REASONS[code], ERROR) for code in (*codes, 401, 403, 503)}
    for code in ("401", "403"):
        replies[code]["headers"] = CHALLENGE
    if "429" in replies:
        replies["429"]["headers"] = RETRY_AFTER
    return replies


def _needs(scope: str) -> list[dict[str, list[str]]]:
    return [{"bearer": [scope]}]


def _param(name: str, description: str, pattern: str = SEGMENT) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": pattern},
    }


WF = _param("id", "Workflow id (a tenant's own, without its tenant)")
AGENT = _param("agent", "Agent name")
ENTRY = _param("entry_id", "Dead-letter stream entry id (ms-seq)", ENTRY_ID)
OBJECT = {"type": "object"}
OBJECTS = {"type": "array", "items": OBJECT}

PATHS: dict[str, Any] = {
    "/healthz": {
        "get": {
            "summary": "Liveness (no auth)",
            "security": [],
            "responses": {"200": _reply("Alive", OBJECT)},
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "security": _needs(READ),
            "responses": {"200": _reply("OpenAPI 3.1", OBJECT), **_errors()},
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics (text exposition format) of this process, all tenants",
            "security": _needs(READ),
            "responses": {
                "200": {"description": "Metrics", "content": {"text/plain": {"schema": TEXT}}},
                **_errors(),
            },
        }
    },
    "/workflows": {
        "post": {
            "summary": "Submit a workflow spec; idempotent on its id",
            "description": "Body: a spec {name?, tasks, adjust_rounds?} and an optional id; "
            "without one, the Idempotency-Key header (or a new id) is used.",
            "security": _needs(SUBMIT),
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
                    **_reply("Created", {"$ref": "#/components/schemas/Submitted"}),
                    "headers": {
                        "Location": {
                            "description": "/workflows/{id}, the id as the caller names it",
                            "required": True,
                            "schema": {"type": "string", "pattern": "^/workflows/"},
                        }
                    },
                },
                "200": _reply(
                    "Already there with this spec", {"$ref": "#/components/schemas/Submitted"}
                ),
                **_errors(400, 408, 409, 413, 415),
            },
        }
    },
    "/workflows/{id}": {
        "get": {
            "summary": "A workflow's state, task by task",
            "description": "A result over 64 KiB (a setting) is shown as "
            '{"elided": true, "bytes": N}: read it from /workflows/{id}/tasks/{task}/result.',
            "security": _needs(READ),
            "parameters": [WF],
            "responses": {
                "200": _reply("The state", {"$ref": "#/components/schemas/Workflow"}),
                **_errors(400, 404),
            },
        }
    },
    "/workflows/{id}/tasks/{task}/result": {
        "get": {
            "summary": "One task's result, whole (null until it is done)",
            "description": "A workflow's state elides results over 64 KiB (a setting) as "
            '{"elided": true, "bytes": N}; this reads one of them.',
            "security": _needs(READ),
            "parameters": [WF, _param("task", "Task id")],
            "responses": {
                "200": _reply("The result, as the agent returned it", {}),
                **_errors(400, 404),
            },
        }
    },
    "/workflows/{id}/events": {
        "get": {
            "summary": "Its lifecycle events (server-sent) from the first kept until it ends",
            "security": _needs(READ),
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
                    "schema": {"type": "string", "pattern": "^(0|[0-9]{1,20}-[0-9]{1,20})$"},
                },
            ],
            "responses": {
                "200": {
                    "description": "One event a lifecycle entry, its wf as the caller names it",
                    "content": {"text/event-stream": {"schema": EVENT}},
                },
                **_errors(400, 404, 429),
            },
        }
    },
    "/workflows/{id}/events-token": {
        "post": {
            "summary": "A token opening this workflow's event stream from a URL (?token=)",
            "description": "Signed, read-only, for this workflow and caller only; never logged.",
            "security": _needs(READ),
            "parameters": [WF],
            "responses": {
                "200": _reply("The token", {"$ref": "#/components/schemas/EventToken"}),
                **_errors(400, 404),
            },
        }
    },
    "/workflows/{id}/cancel": {
        "post": {
            "summary": "Stop a running workflow",
            "security": _needs(SUBMIT),
            "parameters": [
                WF,
                {
                    "name": "reason",
                    "in": "query",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 1000},
                },
            ],
            "responses": {
                "200": _reply("cancelled: false when it had already ended", OBJECT),
                **_errors(400, 404),
            },
        }
    },
    "/agents": {
        "get": {
            "summary": "Per agent: length, lag, pending, consumers, dead letters (all tenants)",
            "security": _needs(READ),
            "responses": {"200": _reply("Stats", OBJECTS), **_errors()},
        }
    },
    "/dead/{agent}": {
        "get": {
            "summary": "The agent's dead letters, oldest first (every tenant's)",
            "security": _needs(ADMIN),
            "parameters": [AGENT],
            "responses": {"200": _reply("Summaries", OBJECTS), **_errors(400)},
        }
    },
    "/dead/{agent}/{entry_id}": {
        "get": {
            "summary": "One dead letter, every field",
            "security": _needs(ADMIN),
            "parameters": [AGENT, ENTRY],
            "responses": {"200": _reply("The entry", OBJECT), **_errors(400, 404)},
        }
    },
    "/dead/{agent}/{entry_id}/requeue": {
        "post": {
            "summary": "Run the task again; its workflow resumes",
            "security": _needs(ADMIN),
            "parameters": [AGENT, ENTRY],
            "responses": {"200": _reply("Requeued", OBJECT), **_errors(400, 404, 409)},
        }
    },
}

SCOPES_TEXT = (
    "A token's scopes: read (workflows, events, agents, metrics, this document), submit "
    "(submit, cancel), admin (dead letters; operators only). A tenant token sees only its "
    "tenant's workflows, by the ids it gave them; another tenant's is 404."
)

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "streamproc", "version": "1"},
    "security": _needs(ADMIN),
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
