"""One connection a client keeps for its submits, outside redis-py's connection pool.

A submit is one FCALL, and redis-py spends more client CPU around a command (pool checkout and
release, a retry wrapper, a timer per read, observability hooks) than the round trip itself
costs: in ``scripts/bench --only submit-cpu``, a PING through ``Redis.ping()`` takes about
twice the client CPU of a PING on this lane.  redis-py still opens the connection (TLS, unix
sockets, AUTH, SELECT, HELLO stay its own); then the lane takes the socket over.  Commands are
written as they come and each reply answers the oldest command waiting, so concurrent submits
share the connection, pipelined; hiredis parses the replies.

A connection that is lost, or that answers nothing for the socket timeout while commands
wait, fails every command waiting on it; the call is then sent again on a new connection
under the client's retry policy, as redis-py retries any command (a submit is idempotent).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import hiredis
from redis._parsers.base import BaseParser
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, InvalidResponse, ResponseError, TimeoutError

from streamproc.transport.cluster import is_cluster
from streamproc.transport.connection import detach

Command = Sequence[str | bytes | int | float]
_pack: Callable[[tuple[Any, ...]], bytes] = hiredis.pack_command  # its stub: a 1-tuple


class Lane:
    """``await lane.send([command, ...])``: the replies, in order; a command Redis refused has
    its :class:`ResponseError` in its place (as a pipeline's ``raise_on_error=False``)."""

    def __init__(self, redis: Redis) -> None:
        self._pool = redis.connection_pool
        self._retry = redis.get_retry() or Retry(NoBackoff(), retries=0)
        self._timeout: float | None = self._pool.connection_kwargs.get("socket_timeout")
        self._replies: _Replies | None = None
        self._connecting = asyncio.Lock()

    async def send(self, commands: Sequence[Command | bytes]) -> list[Any]:
        """Each command is its arguments, or already packed as RESP (one at least)."""
        count = len(commands)
        if count == 1 and isinstance(commands[0], bytes):  # a submit: as it is
            packed = commands[0]
        else:
            packed = b"".join([c if isinstance(c, bytes) else _pack(tuple(c)) for c in commands])
        try:  # the first attempt outside the retry wrapper, which costs a coroutine a call
            return await self._send(packed, count)
        except Exception as error:
            failed: Exception | None = error

        def attempt() -> Awaitable[list[Any]]:
            """The first attempt's error, raised again, lets the retry policy judge it as
            its own; then sends again."""
            nonlocal failed
            if failed is not None:
                error, failed = failed, None
                raise error
            return self._send(packed, count)

        return await self._retry.call_with_retry(attempt, self._drop)

    async def close(self) -> None:
        if self._replies is not None:
            self._replies.transport.close()
            self._replies = None

    def _send(self, packed: bytes, count: int) -> Awaitable[list[Any]]:
        replies = self._usable()  # a plain call, no coroutine of its own, while connected
        if replies is None:
            return self._connect_and_send(packed, count)
        return replies.send(packed, count)

    async def _connect_and_send(self, packed: bytes, count: int) -> list[Any]:
        replies = await self._connect()
        return await replies.send(packed, count)

    def _usable(self) -> _Replies | None:
        """The connection, unless there is none or it failed."""
        replies = self._replies
        return replies if replies is not None and replies.failed is None else None

    async def _connect(self) -> _Replies:
        async with self._connecting:  # concurrent senders open one connection, not several
            replies = self._usable()
            if replies is None:
                connection = self._pool.make_connection()  # type: ignore[no-untyped-call]
                await connection.connect()
                replies = self._replies = _Replies(detach(connection), self._timeout)
            return replies

    async def _drop(self, error: Exception) -> None:
        """After a failed send: the next one opens a new connection."""
        if self._replies is not None and self._replies.failed is not None:
            self._replies.transport.abort()
            self._replies = None


def lane_for(redis: Redis) -> Lane | None:
    """A lane to ``redis``'s server; None for a Cluster client, which routes each command by
    its keys' slot (its callers keep redis-py's way)."""
    return None if is_cluster(redis) else Lane(redis)


async def transact(lane: Lane, commands: Sequence[Command]) -> list[Any]:
    """MULTI, ``commands``, EXEC on ``lane``: each command's reply, a command that failed as it
    ran with its error in its place (as redis-py's ``execute(raise_on_error=False)``); one
    Redis refused to queue is raised, as nothing ran."""
    *queued, ran = await lane.send([("MULTI",), *commands, ("EXEC",)])
    if isinstance(ran, ResponseError):  # EXECABORT: say why
        raise next((reply for reply in queued if isinstance(reply, ResponseError)), ran)
    return list(ran)


async def execute_queued(pipe: Pipeline, lane: Lane | None) -> list[Any]:
    """The transaction queued on ``pipe`` (a redis-py pipeline, not yet sent), each command's
    reply or its error in its place: on ``lane`` when given, where hiredis parses the raw
    replies, else by redis-py's ``execute(raise_on_error=False)``.  Either way a lost
    connection sends it again under the client's retry policy."""
    if lane is None:
        return list(await pipe.execute(raise_on_error=False))
    return await transact(lane, [args for args, _ in pipe.command_stack])


class _Replies(asyncio.Protocol):
    """The lane's socket: commands written, their replies parsed and handed out in order."""

    def __init__(self, socket: asyncio.StreamWriter, timeout: float | None) -> None:
        self._socket = socket  # kept: collecting it would close the transport
        self.transport = socket.transport
        self.timeout = timeout
        self.failed: Exception | None = None
        self._reader = hiredis.Reader(
            protocolError=InvalidResponse, replyError=BaseParser.parse_error
        )
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._loop = asyncio.get_running_loop()
        self._progress = 0.0  # when a reply last came, or a command was sent to an idle socket
        self._watchdog: asyncio.TimerHandle | None = None
        self._drained: asyncio.Future[None] | None = None
        self.transport.set_protocol(self)

    async def send(self, packed: bytes, count: int) -> list[Any]:
        if self.failed is None and self.transport.is_closing():  # uvloop refuses the write
            self._fail(ConnectionError("Connection to Redis lost: closed"))
        if self.failed is not None:
            raise self.failed
        if not self._waiting:
            self._progress = self._loop.time()
            if self._watchdog is None and self.timeout:
                self._watchdog = self._loop.call_at(self._progress + self.timeout, self._check)
        futures = [self._loop.create_future()]
        for _ in range(1, count):  # a loop, no comprehension: a submit sends one command
            futures.append(self._loop.create_future())
        self._waiting.extend(futures)
        self.transport.write(packed)
        try:
            if self._drained is not None:
                await asyncio.shield(self._drained)
            replies = []
            for future in futures:  # a loop: an async comprehension costs a coroutine
                replies.append(await future)
            return replies
        except BaseException:
            for future in futures:  # each failed alike: the first one's error is raised
                if future.done() and not future.cancelled():
                    future.exception()
            raise

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        self._progress = self._loop.time()
        while (reply := self._reader.gets()) is not False:
            future = self._waiting.popleft()
            if not future.done():  # its caller may have been cancelled
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"Connection to Redis lost: {exc or 'closed by the server'}"))

    def pause_writing(self) -> None:
        self._drained = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    def _check(self) -> None:
        """Fail the connection when commands have waited a socket timeout with no reply."""
        self._watchdog = None
        if not self._waiting or self.failed is not None or self.timeout is None:
            return
        silent_until = self._progress + self.timeout
        if self._loop.time() < silent_until:
            self._watchdog = self._loop.call_at(silent_until, self._check)
            return
        self._fail(TimeoutError(f"Redis answered nothing for {self.timeout:g}s"))
        self.transport.abort()

    def _fail(self, error: Exception) -> None:
        if self.failed is None:
            self.failed = error
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for waiting in self._waiting:
            if not waiting.done():
                waiting.set_exception(self.failed)
        self._waiting.clear()
        self.resume_writing()  # a sender held by a full buffer goes on to read its failure
