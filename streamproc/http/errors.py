"""How the HTTP API answers a refusal: ``{"error": message}`` as JSON, with the status a
caller can act on (plus ``task`` for a spec error, ``reason`` for a conflict that states one,
such as a refused requeue).

Bad input is always a 4xx, never a 500; an unreachable Redis is a 503, since the request may
well succeed once it is back, and so is a Redis that lost its data (``epoch.py``).  A tenant
at one of its limits gets 429 with ``Retry-After``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streamproc.errors import (
    BadSignal,
    Conflict,
    LimitReached,
    NotFound,
    RedisReset,
    SignalTooLarge,
    SpecError,
    WorkflowConflict,
    WorkflowNotFound,
)

log = logging.getLogger(__name__)
KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")
UNAVAILABLE = "redis unavailable: try again shortly"


def reply(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal as ``{"error": message}`` (plus ``task`` or ``reason`` when known)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        default = f"{exc.status}: {exc.reason}"
        message = exc.reason if exc.text in (None, default) else exc.text
        error = reply({"error": message}, exc.status)
        error.headers.update({k: v for k, v in exc.headers.items() if k in KEPT_HEADERS})
        if exc.headers.get("Connection") == "close":  # what is left of the request is unread
            error.force_close()
        return error
    except SpecError as exc:
        extra = {"task": exc.task} if exc.task is not None else {}
        return reply({"error": str(exc), **extra}, 400)
    except SignalTooLarge as exc:
        return reply({"error": str(exc)}, 413)
    except BadSignal as exc:
        return reply({"error": str(exc)}, 400)
    except NotFound as exc:
        return reply({"error": str(exc)}, 404)
    except Conflict as exc:
        extra = {"reason": exc.reason} if exc.reason is not None else {}
        return reply({"error": str(exc), **extra}, 409)
    except LimitReached as exc:
        error = reply({"error": str(exc)}, 429)
        error.headers["Retry-After"] = str(exc.retry_after)
        return error
    except RedisReset as exc:
        return reply({"error": str(exc)}, 503)
    except (RedisConnectionError, RedisTimeoutError) as exc:
        log.warning("%s %s: redis unavailable: %s", request.method, request.path, exc)
        return reply({"error": UNAVAILABLE}, 503)  # its address and the cause: logged only


@contextmanager
def named_as(given: str) -> Iterator[None]:
    """Errors about the workflow name it as the caller did: another tenant's workflow is then
    as unknown as a workflow nobody submitted, body included."""
    try:
        yield
    except WorkflowNotFound:
        raise WorkflowNotFound(given) from None
    except WorkflowConflict:
        raise WorkflowConflict(given) from None
