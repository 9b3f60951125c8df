"""The OpenAPI 3.1 description of the HTTP API (``GET /openapi.json``), kept by hand beside
the routes in ``api.py``; a test checks that every route is listed here."""

from __future__ import annotations

from typing import Any

JSON = "application/json"
ERROR = {"$ref": "#/components/schemas/Error"}


def _reply(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    content = {JSON: {"schema": schema}} if schema else {}
    return (
        {"description": description, "content": content}
        if content
        else {"description": description}
    )


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {
        400: "Bad input (invalid id, spec or JSON)",
        401: "Missing or invalid bearer token",
        404: "No such workflow or dead letter",
        409: "Conflict",
        413: "Body over the size limit",
        415: "Body is not JSON",
        503: "Redis unavailable",
    }
    return {str(code): _reply(reasons[code], ERROR) for code in (*codes, 401, 503)}


def _param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,128}$"},
    }


WF = _param("id", "Workflow id")
AGENT = _param("agent", "Agent name")
ENTRY = {**_param("entry_id", "Dead-letter stream entry id"), "schema": {"type": "string"}}
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
        "get": {"summary": "This document", "responses": {"200": _reply("OpenAPI 3.1", OBJECT)}}
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics (text exposition format)",
            "responses": {
                "200": {
                    "description": "Metrics",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/workflows": {
        "post": {
            "summary": "Submit a workflow spec; idempotent on its id",
            "description": "Body: a spec {name?, tasks, adjust_rounds?} and an optional id; "
            "without one, the Idempotency-Key header (or a new id) is used.",
            "parameters": [
                {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}
            ],
            "requestBody": {"required": True, "content": {JSON: {"schema": OBJECT}}},
            "responses": {
                "201": _reply("Created", {"$ref": "#/components/schemas/Submitted"}),
                "200": _reply(
                    "Already there with this spec", {"$ref": "#/components/schemas/Submitted"}
                ),
                **_errors(400, 409, 413, 415),
            },
        }
    },
    "/workflows/{id}": {
        "get": {
            "summary": "A workflow's state, task by task",
            "parameters": [WF],
            "responses": {"200": _reply("The state", OBJECT), **_errors(400, 404)},
        }
    },
    "/workflows/{id}/events": {
        "get": {
            "summary": "Its lifecycle events (server-sent) from the first kept until it ends",
            "parameters": [
                WF,
                {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
            ],
            "responses": {
                "200": {
                    "description": "event: <kind>, data: <JSON>",
                    "content": {"text/event-stream": {}},
                },
                **_errors(400, 404),
            },
        }
    },
    "/workflows/{id}/cancel": {
        "post": {
            "summary": "Stop a running workflow",
            "parameters": [WF, {"name": "reason", "in": "query", "schema": {"type": "string"}}],
            "responses": {
                "200": _reply("cancelled: false when it had already ended", OBJECT),
                **_errors(400, 404),
            },
        }
    },
    "/agents": {
        "get": {
            "summary": "Per agent: length, lag, pending, consumers, dead letters",
            "responses": {"200": _reply("Stats", OBJECTS)},
        }
    },
    "/dead/{agent}": {
        "get": {
            "summary": "The agent's dead letters, oldest first",
            "parameters": [AGENT],
            "responses": {"200": _reply("Summaries", OBJECTS), **_errors(400)},
        }
    },
    "/dead/{agent}/{entry_id}": {
        "get": {
            "summary": "One dead letter, every field",
            "parameters": [AGENT, ENTRY],
            "responses": {"200": _reply("The entry", OBJECT), **_errors(400, 404)},
        }
    },
    "/dead/{agent}/{entry_id}/requeue": {
        "post": {
            "summary": "Run the task again; its workflow resumes",
            "parameters": [AGENT, ENTRY],
            "responses": {"200": _reply("Requeued", OBJECT), **_errors(400, 404, 409)},
        }
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "streamproc", "version": "1"},
    "security": [{"bearer": []}],
    "paths": PATHS,
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "string"}, "task": {"type": "string"}},
            },
            "Submitted": {
                "type": "object",
                "required": ["id"],
                "properties": {"id": {"type": "string"}},
            },
        },
    },
}
