"""Joining and leaving consumer groups without losing pending entries."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import ResponseError


async def ensure_group(redis: Redis, stream: str, group: str) -> None:
    """Create ``group`` on ``stream`` (and the stream) unless it exists; it reads from the start."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def leave_group(redis: Redis, stream: str, group: str, consumer: str) -> bool:
    """Delete ``consumer`` only if it holds no pending entry: XGROUP DELCONSUMER would drop
    them from the group's pending list, and nobody could reclaim them."""
    pending = await redis.xpending_range(stream, group, "-", "+", 1, consumername=consumer)
    if pending:
        return False
    await redis.xgroup_delconsumer(stream, group, consumer)
    return True
