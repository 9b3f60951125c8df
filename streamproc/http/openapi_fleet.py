"""The OpenAPI paths (``openapi.py`` holds the document) about the fleet rather than one
workflow: agents, search providers and dead letters, every tenant's.  Schemathesis sends
requests in this order, so what deletes dead letters comes after what reads them."""

from __future__ import annotations

from typing import Any

from streamproc.http.auth import ADMIN, READ
from streamproc.http.openapi_parts import (
    ENTRY_ID,
    OBJECT,
    OBJECTS,
    TEXT,
    described_reply,
    path_param,
    refusals,
    scoped,
)

AGENT = path_param("agent", "Agent name")
ENTRY = path_param("entry_id", "Dead-letter stream entry id (ms-seq)", ENTRY_ID)
COUNT = {"type": "integer", "minimum": 0}
MS = {"type": ["integer", "null"], "description": "ms since the epoch (Redis's clock)"}
PROVIDER = {
    "type": "object",
    "required": [
        "provider",
        "hits",
        "misses",
        "upstream",
        "hit_ratio",
        "breaker",
        "breaker_until",
        "failure_streak",
        "spent",
        "spent_until",
        "next_slot",
        "quota_calls",
    ],
    "properties": {
        "provider": TEXT,
        "hits": {**COUNT, "description": "Searches answered from an entry it filled"},
        "misses": {**COUNT, "description": "Searches it answered upstream"},
        "upstream": {**COUNT, "description": "Searches sent to it, failures included"},
        "hit_ratio": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "breaker": {"enum": ["closed", "open", "half-open"]},
        "breaker_until": {
            **MS,
            "description": "Open: when a probe may go; half-open: when the probe in flight expires",
        },
        "failure_streak": COUNT,
        "spent": {"type": ["string", "null"], "description": "Why its allowance is spent"},
        "spent_until": MS,
        "next_slot": {**MS, "description": "When the next call is due at the shared rate"},
        "quota_calls": {
            "type": "object",
            "additionalProperties": COUNT,
            "description": "Calls counted this UTC day (dYYYYMMDD) or month (mYYYYMM)",
        },
    },
}
SEARCH = {
    "type": "object",
    "required": ["providers", "unanswered"],
    "properties": {
        "providers": {"type": "array", "items": PROVIDER},
        "unanswered": {**COUNT, "description": "Searches no provider answered"},
    },
}

FLEET_PATHS: dict[str, Any] = {
    "/agents": {
        "get": {
            "summary": "Per agent: length, lag, pending, consumers, dead letters (all tenants)",
            "security": scoped(READ),
            "responses": {"200": described_reply("Stats", OBJECTS), **refusals()},
        }
    },
    "/search": {
        "get": {
            "summary": "Per search provider: cache counters, breaker, spent mark, rate, quota",
            "description": "Read from Redis, so any API process answers for every searching "
            "process. The limiter's decisions are counted only in the searching processes' "
            "/metrics (streamproc_limiter_decisions_total).",
            "security": scoped(READ),
            "responses": {"200": described_reply("The figures", SEARCH), **refusals()},
        }
    },
    "/dead/{agent}": {
        "get": {
            "summary": "The agent's dead letters, oldest first (every tenant's)",
            "security": scoped(ADMIN),
            "parameters": [AGENT],
            "responses": {"200": described_reply("Summaries", OBJECTS), **refusals(400)},
        }
    },
    # Before the entry's own path, whose DELETE purges it.
    "/dead/{agent}/{entry_id}/requeue": {
        "post": {
            "summary": "Run the task again; its workflow resumes",
            "security": scoped(ADMIN),
            "parameters": [AGENT, ENTRY],
            "responses": {"200": described_reply("Requeued", OBJECT), **refusals(400, 404, 409)},
        }
    },
    "/dead/{agent}/{entry_id}": {
        "get": {
            "summary": "One dead letter, every field",
            "security": scoped(ADMIN),
            "parameters": [AGENT, ENTRY],
            "responses": {"200": described_reply("The entry", OBJECT), **refusals(400, 404)},
        },
        "delete": {
            "summary": "Purge one dead letter (its task is not run again)",
            "security": scoped(ADMIN),
            "parameters": [AGENT, ENTRY],
            "responses": {"200": described_reply("Purged", OBJECT), **refusals(400, 404)},
        },
    },
    "/dead/{agent}/purge": {  # last: it empties what the paths above read
        "post": {
            "summary": "Purge the agent's dead letters, in every shard, for good",
            "security": scoped(ADMIN),
            "parameters": [
                AGENT,
                {
                    "name": "before",
                    "in": "query",
                    "description": "Only the entries with a smaller id",
                    "schema": {"type": "string", "pattern": ENTRY_ID},
                },
            ],
            "responses": {
                "200": described_reply(
                    "How many were deleted",
                    {"type": "object", "required": ["purged"], "properties": {"purged": COUNT}},
                ),
                **refusals(400),
            },
        }
    },
}
