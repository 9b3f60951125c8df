"""Helpers of the replication rows (B6 failover, replica acknowledgements), shared by their
tests and ``scripts/chaos``: a replica of a primary, producers that tally what they were told,
and which submissions a promoted replica still holds."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streamproc import Client, Keyspace, WorkflowSpec
from streamproc.errors import NotReplicated
from streamproc.testing.embedded import EmbeddedRedis
from tests.faults.workload import ledger_chain

SPEC = WorkflowSpec.from_dict(ledger_chain(2, 0.01))  # what the producers submit
# A primary starts a replica's full sync at once, not after the default 5 s wait for others.
PRIMARY = ("--repl-diskless-sync-delay", "0")


def replica_of(port: int) -> EmbeddedRedis:
    """A redis-server (not yet started) replicating the one listening on ``port``.  It keeps
    no AOF of its own: one is written in full after each sync, and Redis refuses a SIGTERM
    meanwhile (a quick test's teardown would wait for the kill)."""
    return EmbeddedRedis(None, None, "--replicaof", "127.0.0.1", str(port), "--appendonly", "no")


async def in_sync(primary: Redis) -> bool:
    """For ``eventually``: a write to ``primary`` now reaches its replica, which acknowledges
    it within 0.1 s.  A replica listed online is not enough: after a full sync the primary
    streams to it only once it has acknowledged the sync, which it does once a second."""
    await primary.incr("replica-probe")
    return int(await primary.wait(1, 100)) >= 1


@dataclass
class Tally:
    """What the producers submitted and what they were told; ``moved`` is set once the
    address points at the promoted replica, and the answers to submits begun after that
    are counted apart."""

    attempted: list[str] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)
    not_replicated: int = 0
    unanswered: int = 0  # Redis gone, the address not moved yet
    moved: bool = False
    acked_after_move: int = 0
    not_replicated_after_move: int = 0


async def produce(client: Client, tally: Tally, stop: asyncio.Event) -> None:
    """Submit one workflow after another until ``stop``, tallying each answer."""
    while not stop.is_set():
        workflow_id, after_move = uuid.uuid4().hex, tally.moved
        tally.attempted.append(workflow_id)
        try:
            await client.submit(SPEC, workflow_id)
        except NotReplicated:
            tally.not_replicated += 1
            tally.not_replicated_after_move += after_move
        except (RedisConnectionError, RedisTimeoutError):
            tally.unanswered += 1
        else:
            tally.acked.append(workflow_id)
            tally.acked_after_move += after_move


async def present(redis: Redis, keyspace: Keyspace, ids: list[str]) -> list[str]:
    """Those of ``ids`` whose workflow exists on ``redis``."""
    pipe = redis.pipeline(transaction=False)
    for workflow_id in ids:
        pipe.exists(keyspace.workflow(workflow_id), keyspace.past(workflow_id))
    return [w for w, found in zip(ids, await pipe.execute(), strict=True) if found]


async def answered_after_move(tally: Tally) -> bool:
    """For ``eventually``: a submit begun after the move was answered (by the new primary)."""
    return tally.acked_after_move + tally.not_replicated_after_move > 0
