"""Joining and leaving consumer groups without losing pending entries."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import ResponseError


async def ensure_group(redis: Redis, stream: str, group: str) -> None:
    """Create ``group`` on ``stream`` (and the stream) unless it exists; it reads from the start."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def group_positions(redis: Redis, stream: str) -> dict[bytes, tuple[bytes, bytes | None]]:
    """Each consumer group of ``stream`` by name: the last entry it read, and its oldest
    pending entry (None when nothing is pending).  Empty when there is no stream."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:
        return {}
    positions: dict[bytes, tuple[bytes, bytes | None]] = {}
    for group in groups:
        oldest = None
        if group["pending"]:  # may be None by now: its last pending entry was acked meanwhile
            oldest = (await redis.xpending(stream, group["name"]))["min"]
        positions[group["name"]] = (group["last-delivered-id"], oldest)
    return positions


async def leave_group(redis: Redis, stream: str, group: str, consumer: str) -> bool:
    """Delete ``consumer`` only if it holds no pending entry: XGROUP DELCONSUMER would drop
    them from the group's pending list, and nobody could reclaim them."""
    pending = await redis.xpending_range(stream, group, "-", "+", 1, consumername=consumer)
    if pending:
        return False
    await redis.xgroup_delconsumer(stream, group, consumer)
    return True


async def holders(redis: Redis, entries: Sequence[tuple[str, str, str]]) -> list[str | None]:
    """The consumer each (stream, group, entry id) is pending with, or None (not delivered,
    or acknowledged)."""
    async with redis.pipeline(transaction=False) as pipe:
        for stream, group, entry_id in entries:
            pipe.xpending_range(stream, group, entry_id, entry_id, 1)
        replies = await pipe.execute(raise_on_error=False)
    return [
        pending[0]["consumer"].decode() if isinstance(pending, list) and pending else None
        for pending in replies
    ]
