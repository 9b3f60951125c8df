"""``POST /workflows/{id}/signals/{name}``: send a signal to a running workflow
(``streamproc/ops/signals.py``), its body the payload as JSON (``null`` for none: an empty
body is no JSON, refused like an empty spec), and its OpenAPI description.  The one
Idempotency-Key header, when given, is the signal's id: a retry is applied once."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from streamproc.client import Client
from streamproc.http.auth import GRANT, SUBMIT
from streamproc.http.bodies import IDEMPOTENCY_KEY, one_header, read_json
from streamproc.http.errors import named_as, reply
from streamproc.http.openapi_parts import (
    ID,
    OBJECT,
    WF,
    described_reply,
    path_param,
    refusals,
    scoped,
)
from streamproc.ops.signals import parse_payload, send
from streamproc.store.signals import MAX_SIGNAL_BYTES

SIGNAL = "/workflows/{id}/signals/{name}"
READ_LIMIT = 4 * MAX_SIGNAL_BYTES  # a payload's JSON as sent, before it is compacted


def signal_routes(client: Client, body_timeout: float) -> list[web.RouteDef]:
    async def post_signal(request: web.Request) -> web.Response:
        given, name = request.match_info["id"], request.match_info["name"]
        raw = await read_json(request, READ_LIMIT, body_timeout, "the signal's payload")
        payload = parse_payload(raw)  # empty is no JSON: refused, as a spec's body is
        signal_id = one_header(request, IDEMPOTENCY_KEY)
        stored = request[GRANT].stored_id(given)
        with named_as(given):
            sent = await send(
                client.redis, client.keyspace, stored, name, payload, signal_id, given
            )
        return reply(sent.to_dict())

    return [web.post(SIGNAL, post_signal)]


PATHS: dict[str, Any] = {
    SIGNAL: {
        "post": {
            "summary": "Send a signal: the first task waiting for it resumes with its payload",
            "description": "When no task waits for it yet, it is kept (at most 100 at once) "
            "for the first wait for it that begins. The Idempotency-Key header is its id: "
            "each id is applied once (outcome duplicate).",
            "security": scoped(SUBMIT),
            "parameters": [
                WF,
                path_param("name", "The signal's name"),
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "schema": {"type": "string", "pattern": ID},
                },
            ],
            "requestBody": {
                "required": True,
                "description": f"The payload, any JSON (at most {MAX_SIGNAL_BYTES} bytes; "
                "null for none)",
                "content": {"application/json": {"schema": {}}},
            },
            "responses": {
                "200": described_reply("outcome: applied (task), kept or duplicate", OBJECT),
                **refusals(400, 404, 408, 409, 413, 415),
            },
        }
    }
}
