"""Per-tenant limits: workflows in flight and bytes stored.

The engine's functions count them per shard in the shard's usage hash (``keys.py``,
``lua/engine/common.lua``) for workflows submitted for a tenant; workflows submitted for none
cost nothing.  ``sp_submit`` checks a tenant's limits atomically with creating the workflow,
on its shard: the tenant's usage on the other shards is read just before (one pipeline) and
passed in, so with several shards two submits racing on different shards may each pass a
limit by one workflow (or its bytes).  With one shard the check is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from redis.asyncio import Redis

from streamproc.errors import LimitReached
from streamproc.store.calls import Submitted
from streamproc.store.functions import ENGINE, Arg, Function
from streamproc.store.keys import Keyspace
from streamproc.store.layout import layout

IN_FLIGHT_RETRY_AFTER = 5  # seconds: a workflow in flight may end any moment
STORED_RETRY_AFTER = 60  # seconds: bytes are released as ended workflows' retention passes


@dataclass(frozen=True)
class Quota:
    """A tenant, and its limits (0: none)."""

    tenant: str
    max_workflows: int = 0
    max_bytes: int = 0


class Usage(NamedTuple):
    workflows: int  # in flight
    bytes: int  # of inputs and results stored


def _usage(reply: list[Any]) -> Usage:
    workflows, stored = reply
    return Usage(int(workflows), int(stored))


USAGE = Function("sp_usage", ENGINE, _usage)


async def usage(redis: Redis, keyspace: Keyspace, tenant: str, shards: Sequence[int]) -> Usage:
    """The tenant's usage summed over ``shards`` (one pipeline; ended workflows past their
    retention are released first)."""
    if not shards:
        return Usage(0, 0)
    pipe = redis.pipeline(transaction=False)
    for shard in shards:
        USAGE.queue(pipe, layout(keyspace, shard, [], [], [tenant]))
    replies = [_usage(reply) for reply in await pipe.execute()]
    return Usage(sum(u.workflows for u in replies), sum(u.bytes for u in replies))


async def quota_arguments(redis: Redis, keyspace: Keyspace, quota: Quota, shard: int) -> list[Arg]:
    """``sp_submit``'s arguments for ``quota``, on ``shard``: the tenant, each limit and the
    tenant's usage on the other shards (read only for a limit that is set)."""
    limited = quota.max_workflows or quota.max_bytes
    others = [s for s in keyspace.all_shards() if s != shard] if limited else []
    elsewhere = await usage(redis, keyspace, quota.tenant, others)
    return [
        quota.tenant,
        quota.max_workflows,
        elsewhere.workflows,
        quota.max_bytes,
        elsewhere.bytes,
    ]


async def refusal(
    redis: Redis, keyspace: Keyspace, quota: Quota, outcome: Submitted, added: int
) -> LimitReached:
    """The error for a submit refused by one of ``quota``'s limits, with the tenant's usage
    now; ``added`` is the refused workflow's bytes."""
    now = await usage(redis, keyspace, quota.tenant, list(keyspace.all_shards()))
    if outcome is Submitted.IN_FLIGHT_LIMIT:
        workflows = f"{now.workflows} workflow{'' if now.workflows == 1 else 's'}"
        return LimitReached(
            f"tenant {quota.tenant} has {workflows} in flight, the limit is {quota.max_workflows}",
            IN_FLIGHT_RETRY_AFTER,
        )
    return LimitReached(
        f"tenant {quota.tenant} stores {now.bytes} bytes of inputs and results; this "
        f"workflow's {added} would pass the limit of {quota.max_bytes}",
        STORED_RETRY_AFTER,
    )
