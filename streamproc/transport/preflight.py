"""Checks a daemon runs against its Redis before it reads anything.

A Redis on another host reached without a password is warned about.  An evicting
``maxmemory-policy`` drops workflow state and stream entries silently under
memory pressure, so a daemon refuses to start on one.  A Redis that persists nothing loses
every workflow on restart; that is allowed (tests, demos) but said loudly, once a process
for each Redis (``demo`` runs a worker and a resolver, which check it each).  A role that may
not run CONFIG GET (least-privilege ACLs) skips the checks with a warning: the admin role
that set Redis up is expected to have checked.

Credentials Redis refuses at start are a configuration error: the start ends with one line.
Later in a run (a password rotated under a running daemon) a refusal is ridden out like an
outage, with backoff, until the credentials work again (``retrying``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, NoPermissionError, ResponseError

from streamproc.errors import ConfigError

log = logging.getLogger(__name__)


LOOPBACK = ("127.", "::1", "localhost")
_warned: set[tuple[str, str]] = set()  # (Redis, warning) pairs this process has logged


def unauthenticated_remote(connection: Mapping[str, Any]) -> bool:
    """Connected to a host other than this one with no password: anyone on the network who
    can reach that Redis can read and rewrite every workflow."""
    host = str(connection.get("host") or "localhost")
    return not connection.get("password") and not host.startswith(LOOPBACK)


async def check_server(redis: Redis) -> None:
    pool = getattr(redis, "connection_pool", None)  # a Cluster client has one per node
    connection = getattr(pool, "connection_kwargs", {})
    server = " ".join(str(connection.get(part, "")) for part in ("host", "port", "path", "db"))
    if unauthenticated_remote(connection):
        _warn_once(
            server,
            f"connected to Redis on {connection.get('host')} without a password: use an ACL "
            "user (deploy/acl.conf)",
        )
    try:
        config = await redis.config_get("maxmemory-policy")
        config |= await redis.config_get("appendonly")
        config |= await redis.config_get("save")
    except AuthenticationError as exc:  # retried as an outage otherwise, forever
        raise ConfigError(refused_credentials(exc, bool(connection.get("password")))) from None
    except (NoPermissionError, ResponseError) as exc:
        _warn_once(
            server,
            f"cannot read the Redis configuration ({exc}): eviction and persistence unchecked",
        )
        return
    policy = _text(config.get("maxmemory-policy"))
    if policy.startswith("allkeys-") or policy.startswith("volatile-"):
        raise ConfigError(
            f"Redis evicts keys (maxmemory-policy {policy}): workflow state and stream entries "
            "could vanish under memory pressure; set maxmemory-policy noeviction"
        )
    if config.get("appendonly") != "yes" and not (config.get("save") or "").strip():
        _warn_once(
            server,
            "Redis persists nothing (appendonly no, no save points): a restart loses every "
            "workflow; use appendonly yes in production",
        )


def _warn_once(server: str, message: str) -> None:
    if (server, message) not in _warned:
        _warned.add((server, message))
        log.warning(message)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def refused_credentials(error: Exception, password_given: bool) -> str:
    """What to say when Redis refuses a connection's credentials, or asks for some."""
    if password_given:
        return f"Redis refused the credentials: {error}"
    return (
        "Redis requires a password, and the URL gives none: redis://:PASSWORD@HOST:PORT/DB "
        "(USER:PASSWORD@ for an ACL user)"
    )
