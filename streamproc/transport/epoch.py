"""Noticing a Redis that came back empty.

Redis restarted without persistence (or flushed, or failed over to an empty replica) answers
as if nothing had happened: daemons would re-create their groups and carry on, and every
workflow in flight would be gone without a word.  So each shard holds an epoch key, a random
value set once.  A process remembers the values it found when it started and checks them
every second: a value missing or changed means the data it worked on is gone.  Daemons then
stop with :class:`RedisReset` (exit code 2) rather than start afresh in silence; the HTTP
API answers 503 with the reason.  A process that starts on an empty Redis begins a new epoch
and says so: starting again is the operator's decision.

The check also reads Redis's ``run_id``, which changes on every restart: a restart that kept
its data is reported to the caller (the resolver then reconciles, see ``reconcile.py``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import cast

from redis.asyncio import Redis
from redis.exceptions import NoPermissionError, ResponseError

from streamproc.errors import ConfigError, RedisReset
from streamproc.store.keys import Keyspace
from streamproc.transport.pause import pause
from streamproc.transport.retrying import until_redis_answers

log = logging.getLogger(__name__)
CHECK_INTERVAL = 1.0


SHARDS_MARK = b"/shards="  # shard 0's epoch ends with the namespace's shard count


def new_epoch(keyspace: Keyspace, shard: int) -> bytes:
    """A new epoch value; shard 0's records the shard count it began with (processes only
    compare values, so those of earlier versions, without it, still work as before)."""
    value = uuid.uuid4().hex.encode()
    return value + SHARDS_MARK + str(keyspace.shards).encode() if shard == 0 else value


def check_shards(keyspace: Keyspace, epoch: bytes | None) -> None:
    """Refuse ``keyspace`` when shard 0's ``epoch`` says the namespace runs another number
    of shards: a workflow lands on shard ``crc32(id) mod shards``, so a producer given 4
    where the daemons run 1 would put three in four on shards no worker reads."""
    _, mark, count = (epoch or b"").partition(SHARDS_MARK)
    if mark and count.isdigit() and int(count) != keyspace.shards:
        raise ConfigError(
            f"namespace {keyspace.namespace!r} runs {int(count)} shard(s), not "
            f"{keyspace.shards}: give --shards {int(count)} (STREAMPROC_SHARDS)"
        )


async def check_shard_count(redis: Redis, keyspace: Keyspace) -> None:
    """:func:`check_shards` against what shard 0's epoch says now (one GET; a user that may
    not read it is left unchecked)."""
    try:
        epoch = cast(bytes | None, await redis.get(keyspace.epoch(0)))
    except NoPermissionError:
        return
    check_shards(keyspace, epoch)


class Epoch:
    """The epochs of a keyspace's shards, as this process first found them."""

    def __init__(self, redis: Redis, keyspace: Keyspace) -> None:
        self.redis = redis
        self.keyspace = keyspace
        self.values: dict[int, bytes] = {}
        self.run_id = ""
        self.broken: RedisReset | None = None

    async def establish(self) -> None:
        """Read each shard's epoch, starting one where there is none."""
        started = []
        try:
            for shard in self.keyspace.all_shards():
                new = new_epoch(self.keyspace, shard)
                key = self.keyspace.epoch(shard)
                old = cast(bytes | None, await self.redis.set(key, new, nx=True, get=True))
                if shard == 0:  # before any other shard's epoch is started
                    check_shards(self.keyspace, old)
                self.values[shard] = old or new
                if old is None:
                    started.append(shard)
        except NoPermissionError as exc:
            self.values.clear()
            log.warning("cannot read the epoch keys (%s): a Redis reset goes unnoticed", exc)
            return
        self.run_id = await self._run_id()
        if started:
            log.info(
                "namespace %s: new epoch on %d shard(s) (a fresh Redis, or one that lost its data)",
                self.keyspace.namespace,
                len(started),
            )

    async def verify(self) -> bool:
        """Raise :class:`RedisReset` if a shard's epoch is gone or changed; otherwise whether
        Redis restarted (with its data) since the last check."""
        if self.broken is not None:
            raise self.broken
        pipe = self.redis.pipeline(transaction=False)
        for shard in self.values:
            pipe.get(self.keyspace.epoch(shard))
        found = await pipe.execute() if self.values else []
        run_id = await self._run_id()
        lost = [s for s, value in zip(self.values, found, strict=True) if value != self.values[s]]
        if lost:
            how = f"; it restarted (run_id {self.run_id} -> {run_id})" if run_id else ""
            self.broken = RedisReset(
                f"Redis lost namespace {self.keyspace.namespace}'s data (epoch of shard "
                f"{', '.join(map(str, lost))} gone or changed{how}): workflows in flight "
                "were lost; refusing to start afresh in silence. Restart the engine to begin "
                "a new epoch."
            )
            raise self.broken
        restarted = bool(self.run_id) and run_id != self.run_id
        self.run_id = run_id
        return restarted

    async def watch(
        self, stop: asyncio.Event, on_restart: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Check every second until ``stop`` is set; raises :class:`RedisReset`.
        ``on_restart`` runs after Redis restarted with its data."""
        while not await pause(stop, CHECK_INTERVAL):
            if await until_redis_answers(self.verify) and on_restart is not None:
                await on_restart()

    async def raise_reset_behind(self, errors: BaseExceptionGroup[BaseException]) -> None:
        """Raise the :class:`RedisReset` that explains a failed task group, if one does:
        raised by :meth:`watch`, or behind a NOGROUP (a consumer group gone because Redis
        came back empty).  Returns otherwise, for the caller to re-raise ``errors``."""
        if errors.subgroup(lambda e: isinstance(e, RedisReset)) and self.broken is not None:
            raise self.broken from None
        if errors.subgroup(lambda e: isinstance(e, ResponseError) and "NOGROUP" in str(e)):
            try:
                await self.verify()
            except RedisReset as exc:
                raise exc from None

    async def _run_id(self) -> str:
        try:
            info = await self.redis.info("server")
        except (NoPermissionError, ResponseError):
            return ""
        return str(info.get("run_id", ""))
