"""Typed, frozen settings: one object per component.  Defaults live on the fields; the CLI is
the only place that reads the environment."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from math import inf
from typing import Any, cast
from urllib.parse import SplitResult, parse_qsl, urlsplit

from redis.asyncio import Redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError, TimeoutError

from streamproc.errors import ConfigError
from streamproc.spec.model import Limits
from streamproc.store.keys import Keyspace
from streamproc.transport.cluster import EngineCluster
from streamproc.transport.connection import use_lean_cluster_connections, use_lean_connections
from streamproc.transport.retry_policy import RetryButRefusals


@dataclass(frozen=True)
class RedisSettings:
    """Where Redis is, and the timeouts that notice a dead or blackholed connection.

    ``cluster``: ``url`` names one node of a Redis Cluster; the client finds the others and
    routes each command by its keys' slot.  Every engine call touches the keys of one shard,
    which share a hash tag (see ``keys.py``), so the engine needs nothing else from Cluster.
    """

    url: str = "redis://127.0.0.1:6379/0"
    cluster: bool = False
    connect_timeout: float = 5.0
    # Every blocking read uses a BLOCK well under this, so a hung socket is always noticed.
    socket_timeout: float = 15.0
    health_check_interval: float = 10.0
    # A dropped connection is retried a few times (every engine write is idempotent); longer
    # outages surface to the daemons' loops, which back off until Redis answers.
    command_retries: int = 5
    # Connections a process may open to the server (to each node of a Cluster).  A pool at
    # its cap raises rather than waits, and every wait, follow or blocked read holds one
    # connection while it blocks (redis-py's own cap, 100, failed the 101st of a producer's
    # concurrent waits), so the cap sits far above what a process opens; Redis's maxclients
    # (10,000 by default) bounds them all.
    max_connections: int = 10_000

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "socket_timeout", "health_check_interval"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < inf:
                raise ConfigError(
                    f"{name} must be a finite number of seconds over 0, not {value!r}"
                )

    @classmethod
    def from_url(cls, url: str, insecure: bool = False, cluster: bool = False) -> RedisSettings:
        """Settings for ``url``.  A ``rediss://`` URL that turns certificate or hostname
        checks off (``ssl_cert_reqs=none|optional``, ``ssl_check_hostname=false``) is refused
        unless ``insecure`` says it is meant (a development setup).  A Cluster is reached over
        TCP and has only database 0."""
        if not isinstance(url, str):
            raise ConfigError(f"a Redis URL is text (redis://, rediss:// or unix://), not {url!r}")
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(
                f"not a Redis URL: {redacted(url)!r} (redis://, rediss:// or unix://)"
            )
        parts = _split(url)
        query = {k.lower(): v.lower() for k, v in parse_qsl(parts.query)}
        database = _database(url, parts.path, query.get("db"))
        if cluster and (url.startswith("unix://") or database not in ("", "0")):
            raise ConfigError("a Redis Cluster URL is redis:// or rediss:// with database 0")
        unchecked = query.get("ssl_cert_reqs") in ("none", "optional") or query.get(
            "ssl_check_hostname"
        ) in ("false", "no", "0")
        if unchecked and not insecure:
            raise ConfigError(
                "the Redis URL turns TLS certificate checks off: refused (use --insecure-dev "
                "for a development setup)"
            )
        return cls(url=url, cluster=cluster)

    def check_block(self, block_ms: int) -> None:
        """Refuse a blocking read (XREADGROUP BLOCK) as long as the socket timeout: every
        idle read would be cut and its connection dropped as hung."""
        if block_ms / 1000 >= self.socket_timeout:
            raise ConfigError(
                f"block_ms {block_ms} must stay under the socket timeout ({self.socket_timeout}s)"
            )

    def keepalive_options(self) -> dict[int, int]:
        """Probe an idle connection after a socket timeout's worth of silence and give up
        after three unanswered probes, instead of the kernel's two hours: a pooled
        connection to a host that vanished is then dropped before a command is sent on it."""
        idle = max(1, int(self.socket_timeout))
        wanted = {"TCP_KEEPIDLE": idle, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3}
        return {getattr(socket, k): v for k, v in wanted.items() if hasattr(socket, k)}

    def connect(self) -> Redis:
        """A client for ``url``.  For a Cluster, a ``RedisCluster`` typed as ``Redis``: it
        offers the same command methods (routing each by its keys' slot), and the engine uses
        nothing else, so callers stay one type (see ``cluster`` above)."""
        options: dict[str, Any] = dict(
            socket_connect_timeout=self.connect_timeout,
            socket_timeout=self.socket_timeout,
            health_check_interval=self.health_check_interval,
            retry=RetryButRefusals(
                ExponentialWithJitterBackoff(base=0.05, cap=1.0), self.command_retries
            ),
            retry_on_error=[ConnectionError, TimeoutError],
        )
        if not self.url.startswith("unix://"):  # TCP keep-alive: a unix socket has none
            options.update(socket_keepalive=True, socket_keepalive_options=self.keepalive_options())
        if self.cluster:
            cluster = EngineCluster.from_url(
                self.url, max_connections=self.max_connections, **options
            )
            return cast(Redis, use_lean_cluster_connections(cluster))
        client = Redis.from_url(self.url, max_connections=self.max_connections, **options)
        return use_lean_connections(client)


# The user:password@ of a URL, scheme optional; the password runs to the netloc's last "@".
_CREDENTIALS = re.compile(r"^((?:[^:/?#]+://)?[^:/?#@]*):[^/?#]*@")


def redacted(url: str) -> str:
    """``url`` with its password, if any, replaced: URLs end up in messages and logs.  By
    pattern, not by ``urlsplit``, which raises on some of the URLs a message is about."""
    return _CREDENTIALS.sub(r"\1:***@", url, count=1)


def _split(url: str) -> SplitResult:
    """``url`` split, or :class:`ConfigError` for a host or port redis-py would only choke on
    when connecting (a ``ValueError`` traceback), or take for its default (port 0)."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"invalid Redis URL {redacted(url)!r}: malformed host ({exc})") from None
    try:
        valid_port = parts.port != 0 and not parts.netloc.endswith(":")
    except ValueError:  # no number, or past 65535
        valid_port = False
    if not valid_port:
        raise ConfigError(
            f"invalid Redis URL {redacted(url)!r}: the port must be a number from 1 to 65535"
        )
    return parts


def _database(url: str, path: str, db: str | None) -> str:
    """The database ``url`` selects: ``db`` (its ``?db=``) if given, else its path (for TCP;
    a unix:// path is the socket).  redis-py would take a path that is no number for 0."""
    in_path = None if url.startswith("unix://") else path.strip("/")
    for database in (in_path, db):
        if database and not (database.isascii() and database.isdigit()):
            raise ConfigError(
                f"invalid Redis URL {redacted(url)!r}: the database must be a number from 0 up, "
                f"not {database!r}"
            )
    return db if db is not None else in_path or ""


@dataclass(frozen=True)
class ClientSettings:
    """How a producer submits: key layout, spec limits and how long finished workflows stay."""

    keyspace: Keyspace = field(default_factory=Keyspace)
    limits: Limits = field(default_factory=Limits)
    workflow_ttl: float = 7 * 24 * 3600.0
    # Return from submit only once the submission is on disk (WAITAOF on Redis 7.2+; see
    # streamproc/transport/durability.py), waiting at most durable_timeout for the fsync.
    durable: bool = False
    durable_timeout: float = 1.0
    # Return from submit only once this many replicas acknowledged the submission (WAIT after
    # it; see streamproc/transport/durability.py), waiting at most replica_timeout for them.
    replicas: int = 0
    replica_timeout: float = 0.1

    def __post_init__(self) -> None:
        if self.replicas < 0:
            raise ConfigError("replicas must be at least 0")
        if self.replica_timeout < 0.001:
            raise ConfigError("replica_timeout must be at least 0.001 s (WAIT 0 waits forever)")


@dataclass(frozen=True)
class AutoscaleSettings:
    """How many of a worker's slots each agent may use, sized to its load across the fleet.

    ``min_consumers`` and ``max_consumers`` bound the fleet-wide desired count of one agent
    (``max_consumers`` None: the worker's ``concurrency``); ``streamproc/autoscale/policy.py``
    explains the formula (``drain_target``) and the hysteresis (``margin``, ``cooldown``,
    ``step_down``).  The lease holder's settings decide; every process follows its count.
    """

    min_consumers: int = 1
    max_consumers: int | None = None
    # Seconds in which the consumers should clear the backlog on top of keeping up.
    drain_target: float = 30.0
    # A scale-down waits until the need has stayed low this long.
    cooldown: float = 60.0
    interval: float = 5.0
    margin: float = 0.2
    # At most this fraction of the current count is retired in one step.
    step_down: float = 0.5

    def __post_init__(self) -> None:
        if self.min_consumers < 0:
            raise ConfigError("min_consumers must be at least 0")
        if self.max_consumers is not None and self.max_consumers < max(1, self.min_consumers):
            raise ConfigError("max_consumers must be at least 1 and at least min_consumers")
        if self.drain_target <= 0 or self.interval <= 0 or self.cooldown < 0:
            raise ConfigError("autoscale needs drain_target > 0, interval > 0, cooldown >= 0")
        if not 0 <= self.margin < 1 or not 0 < self.step_down <= 1:
            raise ConfigError("autoscale needs 0 <= margin < 1 and 0 < step_down <= 1")

    def bounds(self, concurrency: int) -> tuple[int, int]:
        """The desired count's range for a worker of ``concurrency`` slots."""
        high = concurrency if self.max_consumers is None else self.max_consumers
        return min(self.min_consumers, high), high


@dataclass(frozen=True)
class WorkerSettings:
    """One worker process: which agents it serves and how it reads, runs and recovers tasks."""

    agents: tuple[str, ...]
    keyspace: Keyspace = field(default_factory=Keyspace)
    concurrency: int = 32
    block_ms: int = 2000
    # A pending entry idle this long has lost its worker; live workers refresh their entries
    # every heartbeat_interval, so a long task is never taken over while it runs.
    visibility_timeout: float = 30.0
    heartbeat_interval: float = 5.0
    claim_interval: float = 5.0
    max_lost_deliveries: int = 3
    shutdown_grace: float = 10.0
    max_result_bytes: int = 1 << 20
    # Longest wait after a short read while tasks arrive fast (engine/linger.py); 0: never.
    read_linger: float = 0.001
    # None: every agent may use all ``concurrency`` slots (streamproc/autoscale/fleet.py when set).
    autoscale: AutoscaleSettings | None = None
    # A failed task's next attempt waits min(retry_cap, retry_base * 2^(failures - 1)) seconds,
    # jittered: set by the worker that applies the failure (the resolver's own for those it
    # applies from the completion stream).
    retry_base: float = 1.0
    retry_cap: float = 60.0
    # False: report completions to the completion stream for the resolver to apply (they are
    # then there for ``replay stream``), as a worker whose Redis user may not write every
    # agent's task stream does by itself.
    apply_completions: bool = True

    def __post_init__(self) -> None:
        if not self.agents:
            raise ConfigError("a worker needs at least one agent")
        if self.concurrency < 1:
            raise ConfigError("concurrency must be at least 1")
        if self.heartbeat_interval * 2 > self.visibility_timeout:
            raise ConfigError("heartbeat_interval must be under half the visibility_timeout")


@dataclass(frozen=True)
class ResolverSettings:
    """The completion consumer: batch size, retry backoff and stream retention."""

    keyspace: Keyspace = field(default_factory=Keyspace)
    batch: int = 500
    block_ms: int = 2000
    visibility_timeout: float = 30.0
    claim_interval: float = 5.0
    retry_base: float = 1.0
    retry_cap: float = 60.0
    release_interval: float = 0.1
    trim_interval: float = 10.0
    # Retention of the shared events stream: at most this many entries (MAXLEN ~), and, when
    # set, none older than this many seconds (MINID).  Each workflow's own history stream is
    # kept as long as the workflow instead (ClientSettings.workflow_ttl).
    events_maxlen: int = 1_000_000
    events_max_age: float | None = None
    # Task and completion streams are trimmed below what every group acknowledged, but keep
    # entries younger than this many seconds (by Redis's clock) for ``replay stream``.
    stream_retention: float = 0.0
    # A debug group (``replay stream --group``) idle this many seconds is destroyed, and
    # holds back no trimming once it is that idle.
    debug_group_idle: float = 3600.0
    # Longest wait after a short read while completions arrive fast (streamproc/engine/linger.py).
    read_linger: float = 0.002
    # How often to look for queued tasks no stream holds (streamproc/engine/reconcile.py); also at
    # start and after Redis restarts.
    reconcile_interval: float = 600.0
    # A consumer idle this many seconds, holding nothing, whose worker no longer marks itself
    # alive (it renews the mark every sweep) has lost its worker: it is removed, so it no
    # longer counts as serving its agent.
    consumer_max_idle: float = 120.0
