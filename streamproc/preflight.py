"""Checks a daemon runs against its Redis before it reads anything.

An evicting ``maxmemory-policy`` drops workflow state and stream entries silently under
memory pressure, so a daemon refuses to start on one.  A Redis that persists nothing loses
every workflow on restart; that is allowed (tests, demos) but said loudly.  A role that may
not run CONFIG GET (least-privilege ACLs) skips the checks with a warning: the admin role
that set Redis up is expected to have checked.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import NoPermissionError, ResponseError

from streamproc.errors import ConfigError

log = logging.getLogger(__name__)


async def check_server(redis: Redis) -> None:
    try:
        config = await redis.config_get("maxmemory-policy")
        config |= await redis.config_get("appendonly")
        config |= await redis.config_get("save")
    except (NoPermissionError, ResponseError) as exc:
        log.warning(
            "cannot read the Redis configuration (%s): eviction and persistence unchecked", exc
        )
        return
    policy = _text(config.get("maxmemory-policy"))
    if policy.startswith("allkeys-") or policy.startswith("volatile-"):
        raise ConfigError(
            f"Redis evicts keys (maxmemory-policy {policy}): workflow state and stream entries "
            "could vanish under memory pressure; set maxmemory-policy noeviction"
        )
    if config.get("appendonly") != "yes" and not (config.get("save") or "").strip():
        log.warning(
            "Redis persists nothing (appendonly no, no save points): a restart loses every "
            "workflow; use appendonly yes in production"
        )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")
