"""Every Redis key streamproc uses, and the only place that spells them out.

All keys of one shard share the hash tag ``{<ns>:<shard>}``, so a workflow, the streams that
serve it and every Lua call on them live in one Redis Cluster slot.  A workflow's shard is
``crc32(workflow id) mod shards``.

=============================  ======  ====================================================
key                            type    holds
=============================  ======  ====================================================
``{ns:s}:tasks:<agent>``       stream  task-ready events; consumer group ``<agent>``
``{ns:s}:done``                stream  completions from workers; consumer group ``resolver``
``{ns:s}:events``              stream  workflow lifecycle events, for producers and UIs
``{ns:s}:dead:<agent>``        stream  dead-lettered tasks of ``<agent>``, with reason
``{ns:s}:dead-done``           stream  completions that could not be applied, with reason
``{ns:s}:delayed``             zset    ``"<workflow> <task>"`` scored by retry time (ms)
``{ns:s}:deadlines``           zset    running workflows' hash keys scored by deadline (ms)
``{ns:s}:index``               zset    workflow ids scored by creation (ms), for listing;
                                       members whose hash expired are pruned lazily
``{ns:s}:agents``              set     agent names used by any workflow of the shard
``{ns:s}:usage``               hash    counters: ``agent:<a>`` running workflows naming
                                       agent a; ``workflows:<t>``, ``bytes:<t>`` tenant t's
                                       workflows in flight and bytes stored;
                                       ``awaiting:<a>`` a's tasks awaiting a signal
                                       (``awaiting:`` declared waits)
``{ns:s}:retained``            zset    ended tenant workflows ``"<t> <bytes> <hash key>"``
                                       scored by expiry (ms): their bytes, still counted
``{ns:s}:epoch``               string  a random value set once: gone means Redis lost the shard
                                       (shard 0's ends with the namespace's shard count)
``{ns:s}:wf:<workflow>``       hash    workflow state: status and per-task fields
``{ns:s}:hist:<workflow>``     stream  its events as they come, while someone follows it
                                       (``sp_watch``: it lives ``WATCH_MS`` after the last)
``{ns:s}:past:<workflow>``     string  its history, expiring with its hash: one JSON array
                                       a line, ``[id, kind, field, value, ...]`` (not ``v``
                                       nor ``wf``; times in ms after the id's)
``{ns:s}:out:<workflow>``      stream  chunks its agents emit, capped, expiring with its hash
``ns:cache:<provider>:<sha>``  hash    a cached search reply (result, created, hits)
``ns:cache-lock:<sha>``        string  single-flight lock of one query's upstream search
``ns:cache:stats``             hash    ``<provider>:hit|miss|upstream`` counters
``ns:alive:<consumer>``        string  a worker's mark that it lives, renewed every sweep
``ns:scale:<agent>:desired``   string  the autoscaler's fleet-wide consumer count (stable)
``ns:scale:<agent>:members``   zset    worker processes by last heartbeat (ms)
``ns:scale:<agent>:latency``   hash    each process's average task duration (s)
``ns:scale:<agent>:lease``     string  the process that computes the count
``{ns:api:<provider>}:*``      mixed   shared rate, quota, spent mark, breaker (limiter.py)
=============================  ======  ====================================================

Cache keys carry no shard tag: each is read and written on its own, never with another key.

The workflow hash's fields are named in ``fields.py``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from streamproc.errors import ConfigError
from streamproc.store.ids import ID_PATTERN

RESOLVER_GROUP = "resolver"  # the consumer group of every done stream
DELAYED_SEPARATOR = " "  # a delayed set member is "<workflow> <task>"
# Consumer groups made for debugging (``replay stream --group``) carry this prefix, so they
# are never taken for an agent's group or the resolver's, and expire when idle.
DEBUG_GROUP_PREFIX = "debug-"
# How long a workflow's history stream lives after a follower last asked for it (ms): followers
# ask again every third of it (``ops/follow.py``), and it is made again if it expired.
WATCH_MS = 60_000


def workflow_of(key: bytes | str) -> str:
    """The workflow id a workflow hash key names (an id holds no colon)."""
    text = key.decode() if isinstance(key, bytes) else key
    return text.rsplit(":", 1)[1]


def delayed_task(member: bytes) -> tuple[str, str]:
    """The (workflow, task) a member of a delayed set names."""
    workflow, _, task = member.decode().partition(DELAYED_SEPARATOR)
    return workflow, task


MAX_SHARDS = 1024  # a reader of every shard (list, events) holds a connection per shard


@dataclass(frozen=True)
class Keyspace:
    """Namespace and shard count: everything needed to name a key."""

    namespace: str = "sp"
    shards: int = 1

    def __post_init__(self) -> None:
        if not ID_PATTERN.fullmatch(self.namespace):
            raise ConfigError(f"invalid namespace {self.namespace!r}")
        if not 1 <= self.shards <= MAX_SHARDS:
            raise ConfigError(f"shards must be from 1 to {MAX_SHARDS}, not {self.shards}")

    def shard_of(self, workflow_id: str) -> int:
        return zlib.crc32(workflow_id.encode()) % self.shards

    def all_shards(self) -> range:
        return range(self.shards)

    def _tag(self, shard: int) -> str:
        return f"{{{self.namespace}:{shard}}}"

    def tasks(self, shard: int, agent: str) -> str:
        return f"{self._tag(shard)}:tasks:{agent}"

    def dead(self, shard: int, agent: str) -> str:
        return f"{self._tag(shard)}:dead:{agent}"

    def done(self, shard: int) -> str:
        return f"{self._tag(shard)}:done"

    def dead_done(self, shard: int) -> str:
        return f"{self._tag(shard)}:dead-done"

    def events(self, shard: int) -> str:
        return f"{self._tag(shard)}:events"

    def delayed(self, shard: int) -> str:
        return f"{self._tag(shard)}:delayed"

    def deadlines(self, shard: int) -> str:
        return f"{self._tag(shard)}:deadlines"

    def agents(self, shard: int) -> str:
        return f"{self._tag(shard)}:agents"

    def usage(self, shard: int) -> str:
        return f"{self._tag(shard)}:usage"

    def retained(self, shard: int) -> str:
        return f"{self._tag(shard)}:retained"

    def index(self, shard: int) -> str:
        """The shard's workflow ids scored by creation time (ms), newest last: written by
        ``sp_submit``, read by ``ops/listing.py``, pruned by ``store/index.py``."""
        return f"{self._tag(shard)}:index"

    def epoch(self, shard: int) -> str:
        return f"{self._tag(shard)}:epoch"

    def workflows(self, shard: int) -> str:
        """SCAN pattern of the shard's workflow hashes (ids never hold a glob character)."""
        return f"{self._tag(shard)}:wf:*"

    def workflow(self, workflow_id: str) -> str:
        return f"{self._tag(self.shard_of(workflow_id))}:wf:{workflow_id}"

    def history(self, workflow_id: str) -> str:
        return f"{self._tag(self.shard_of(workflow_id))}:hist:{workflow_id}"

    def workflow_keys(self, workflow_id: str) -> tuple[str, str, str, str]:
        """The workflow's hash, history stream, output stream and archive, at once."""
        wf, hist, out, past = self.workflow_prefixes(self.shard_of(workflow_id))
        return wf + workflow_id, hist + workflow_id, out + workflow_id, past + workflow_id

    def workflow_prefixes(self, shard: int) -> tuple[str, str, str, str]:
        """What each of :meth:`workflow_keys` holds before the id, for a workflow of ``shard``."""
        tag = self._tag(shard)
        return f"{tag}:wf:", f"{tag}:hist:", f"{tag}:out:", f"{tag}:past:"

    def history_of(self, workflow_key: str) -> str:
        """The history stream that belongs with a workflow hash key."""
        tag, _, workflow_id = workflow_key.partition(":wf:")
        return f"{tag}:hist:{workflow_id}"

    def past(self, workflow_id: str) -> str:
        """The archive of the workflow's history (``ops/history.py`` reads it)."""
        return f"{self._tag(self.shard_of(workflow_id))}:past:{workflow_id}"

    def output(self, workflow_id: str) -> str:
        """The stream of chunks the workflow's agents emit while they run."""
        return f"{self._tag(self.shard_of(workflow_id))}:out:{workflow_id}"

    def head(self, shard: int) -> list[str]:
        """The fixed leading KEYS of every engine function (see ``lua/engine/common.lua``)."""
        return [
            self.events(shard),
            self.delayed(shard),
            self.done(shard),
            self.agents(shard),
            self.dead_done(shard),
            self.deadlines(shard),
            self.usage(shard),
            self.retained(shard),
            self.index(shard),
        ]

    def cache(self, provider: str, digest: str) -> str:
        """A cached search reply (hash), by provider and sha256 of the normalised query.

        Cache keys carry no shard hash tag: each is read and written alone, never together
        with workflow keys in one script or transaction, so any Cluster slot will do.
        """
        return f"{self.namespace}:cache:{provider}:{digest}"

    def cache_lock(self, digest: str) -> str:
        """The single-flight lock of one query: held by the process calling upstream for it."""
        return f"{self.namespace}:cache-lock:{digest}"

    def cache_stats(self) -> str:
        """The search cache's counters (hash of ``<provider>:hit|miss|upstream``)."""
        return f"{self.namespace}:cache:stats"

    def api_limits(self, provider: str, period: str) -> list[str]:
        """The shared limits of one external API, in the KEYS order of ``sp_limits_admit``
        (``lua/limits.lua``), all under the hash tag ``{<ns>:api:<provider>}``:

        ``rate`` (string: GCRA theoretical arrival time, us), ``quota:<period>`` (string:
        calls this day or month, expiring at its end), ``spent`` (string: why the allowance is
        spent, expiring when it renews), ``breaker`` (hash: ``open_until``, ``streak``,
        ``calls``, ``errors``, ``since``) and ``probe`` (string: the half-open probe's token).
        """
        tag = f"{{{self.namespace}:api:{provider}}}"
        parts = ("rate", f"quota:{period}", "spent", "breaker", "probe")
        return [f"{tag}:{part}" for part in parts]

    def alive(self, consumer: str) -> str:
        """A worker's mark that it lives, expiring unless renewed: a consumer without one
        lost its worker (``groups.reap``).  No hash tag: read and written on its own."""
        return f"{self.namespace}:alive:{consumer}"

    def scale_desired(self, agent: str) -> str:
        """The desired number of consumers (slots) of ``agent`` across all worker processes,
        an integer written by the autoscaler's lease holder (``streamproc/autoscale/fleet.py``).

        A stable name for outside scalers to read: ``<ns>:scale:<agent>:desired``, with no
        shard hash tag (agents span shards; the key is read and written on its own).
        """
        return f"{self.namespace}:scale:{agent}:desired"

    def scale_members(self, agent: str) -> str:
        """Worker processes serving ``agent``, scored by their last heartbeat (Redis ms)."""
        return f"{self.namespace}:scale:{agent}:members"

    def scale_latency(self, agent: str) -> str:
        """Each process's moving average of ``agent``'s task duration, in seconds."""
        return f"{self.namespace}:scale:{agent}:latency"

    def scale_lease(self, agent: str) -> str:
        """The process that computes ``agent``'s desired count, expiring unless renewed."""
        return f"{self.namespace}:scale:{agent}:lease"
