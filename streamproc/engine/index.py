"""Keeping each shard's workflow index (``keys.py`` ``index``) to workflows that still exist.

A workflow's hash expires ``ttl`` after it ends, and one with ttl 0 never does, so the index
cannot be trimmed by age: a member goes only once its hash is gone.  The resolver walks each
shard's index a batch at a time, oldest first, wrapping around at the newest, so a long-lived
workflow at the head never stalls the walk; listing drops the expired members it meets too.
Both check existence first with a pipeline, then let ``sp_unindex`` drop only those still
gone, atomically.
"""

from __future__ import annotations

from typing import cast

from redis.asyncio import Redis

from streamproc.store import admin
from streamproc.store.keys import Keyspace

PRUNE_BATCH = 500  # index members one batch checks
PRUNE_ROUNDS = 10  # batches one pass over a shard may take, while they find expired ones


async def missing(redis: Redis, keyspace: Keyspace, workflow_ids: list[str]) -> list[str]:
    """Those of ``workflow_ids`` that are gone: no hash, and no archive (where an ended
    workflow is stowed)."""
    async with redis.pipeline(transaction=False) as pipe:
        for workflow_id in workflow_ids:
            pipe.exists(keyspace.workflow(workflow_id), keyspace.past(workflow_id))
        found = await pipe.execute()
    return [wf for wf, there in zip(workflow_ids, found, strict=True) if not there]


async def unindex_missing(redis: Redis, keyspace: Keyspace, workflow_ids: list[str]) -> int:
    """Drop from their shards' indexes those of ``workflow_ids`` whose hash is gone."""
    by_shard: dict[int, list[str]] = {}
    for workflow_id in workflow_ids:
        by_shard.setdefault(keyspace.shard_of(workflow_id), []).append(workflow_id)
    return sum([await admin.unindex(redis, keyspace, s, ids) for s, ids in by_shard.items()])


async def prune(redis: Redis, keyspace: Keyspace, shard: int, start: int) -> tuple[int, int]:
    """Drop the expired workflows among ``shard``'s index members from rank ``start`` (oldest
    first), ``PRUNE_BATCH`` of them; return the rank the next batch starts from (0 after the
    newest) and how many it dropped."""
    members = cast(
        list[bytes], await redis.zrange(keyspace.index(shard), start, start + PRUNE_BATCH - 1)
    )
    ids = [member.decode() for member in members]
    gone = await missing(redis, keyspace, ids) if ids else []
    dropped = await admin.unindex(redis, keyspace, shard, gone)
    return (0 if len(ids) < PRUNE_BATCH else start + len(ids) - dropped), dropped
