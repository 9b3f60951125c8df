"""redis-py asyncio connections that spend less CPU per command.

redis-py 8 packs commands in Python and wraps every socket write in ``asyncio.wait_for``, which
creates a task per command; with no-op agents those two take a fifth of a daemon's CPU (see
``scripts/bench --profile``).  Here hiredis packs the command (redis-py's own sync client does
the same), and a write waits only when the socket's buffer is over its high-water mark, which
is the only time a write can block; that wait keeps the socket timeout.  Likewise a read sets
up redis-py's timeout (a timer per reply) only when it has to wait for the socket: a
pipeline's replies mostly arrive together, and a worker's flush reads one per task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, cast

import hiredis
from redis import exceptions
from redis._parsers.hiredis import NOT_ENOUGH_DATA, _AsyncHiredisParser
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)

WRITE_BUFFER_LIMIT = 1 << 20


class LeanWrites(AbstractConnection):
    """Mixed in before a redis-py connection class; changes only packing, writing, and
    reading a reply that is already buffered."""

    def pack_command(self, *args: Any) -> list[bytes]:
        name = args[0]
        if isinstance(name, str) and " " in name:  # "XINFO GROUPS" goes as two words
            args = (*name.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError as exc:
            raise exceptions.DataError(str(exc)) from None

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        if not self.is_connected:
            await self.connect_check_health(check_health=False)
        if check_health:
            await self.check_health()  # type: ignore[no-untyped-call]
        if isinstance(command, str):
            command = command.encode()
        writer = self._writer
        assert writer is not None  # connected above
        if writer.transport.is_closing():  # lost: uvloop raises RuntimeError at a write
            await self.disconnect(nowait=True)
            raise exceptions.ConnectionError("Error while writing to socket: connection closed")
        try:
            if isinstance(command, bytes):
                writer.write(command)
            else:
                writer.writelines(command)
            if writer.transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
                async with asyncio.timeout(self.socket_timeout):
                    await writer.drain()
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise exceptions.TimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            await self.disconnect(nowait=True)
            raise exceptions.ConnectionError(f"Error while writing to socket: {exc}") from exc
        except BaseException:
            await self.disconnect(nowait=True)
            raise

    async def read_response(
        self,
        disable_decoding: bool = False,
        timeout: float | None = None,
        *,
        disconnect_on_error: bool = True,
        push_request: bool | None = False,
    ) -> Any:
        """A whole reply already buffered (read with the default socket timeout) is taken at
        once and given redis-py's own checks; any other read is redis-py's."""
        reply = self._buffered_reply(disable_decoding) if timeout is None else NOT_ENOUGH_DATA
        if reply is NOT_ENOUGH_DATA:
            return await super().read_response(
                disable_decoding,
                timeout,
                disconnect_on_error=disconnect_on_error,
                push_request=push_request,
            )
        if isinstance(reply, list) and reply and isinstance(reply[0], exceptions.ConnectionError):
            reply = reply[0]
        if isinstance(reply, exceptions.ConnectionError):
            if disconnect_on_error:
                await self.disconnect(nowait=True)
            raise reply
        if self._is_push(reply):  # RESP3: handled as redis-py's parser does
            reply = await self._parser.handle_push_response(reply)  # type: ignore[attr-defined]
            if not push_request:
                return await self.read_response(
                    disable_decoding, disconnect_on_error=disconnect_on_error
                )
        if self.health_check_interval:
            next_time = asyncio.get_running_loop().time() + self.health_check_interval
            self.next_health_check = next_time
        if isinstance(reply, exceptions.ResponseError):
            raise reply from None
        return reply

    def _buffered_reply(self, disable_decoding: bool) -> Any:
        """The next reply if the hiredis reader holds all of it, else ``NOT_ENOUGH_DATA``."""
        parser = self._parser
        if not isinstance(parser, _AsyncHiredisParser):
            return NOT_ENOUGH_DATA
        reader = parser._reader
        if reader is None or not parser._connected or not reader.has_data():
            return NOT_ENOUGH_DATA
        return reader.gets(False) if disable_decoding else reader.gets()

    def _is_push(self, reply: Any) -> bool:
        push_type = getattr(self._parser, "_hiredis_PushNotificationType", None)
        return push_type is not None and isinstance(reply, push_type)


class LeanConnection(LeanWrites, Connection):
    pass


class LeanSSLConnection(LeanWrites, SSLConnection):
    pass


class LeanUnixConnection(LeanWrites, UnixDomainSocketConnection):
    pass


LEAN = {
    Connection: LeanConnection,
    SSLConnection: LeanSSLConnection,
    UnixDomainSocketConnection: LeanUnixConnection,
}


def detach(connection: AbstractConnection) -> asyncio.StreamWriter:
    """The socket of a connected redis-py ``connection``, which from now on is the caller's:
    the connection no longer knows it (nor closes it).  The caller keeps the writer: once it
    is collected, its socket is closed."""
    writer = connection._writer
    if writer is None:
        raise exceptions.ConnectionError("not connected")
    connection._reader = connection._writer = None
    return writer


def use_lean_connections(redis: Redis) -> Redis:
    """Swap the pool's connection class for its lean twin (before any connection exists)."""
    pool = redis.connection_pool
    pool.connection_class = LEAN.get(pool.connection_class, pool.connection_class)
    return redis


def use_lean_cluster_connections(cluster: RedisCluster) -> RedisCluster:
    """The same swap for every node of a Cluster client, before it connects.  Nodes found
    later are built from the client's connection kwargs; the startup nodes were built already
    (redis-py's own maintenance-notification setup patches them the same way)."""
    kwargs = cluster.get_connection_kwargs()
    plain = cast(type[AbstractConnection], kwargs["connection_class"])
    kwargs["connection_class"] = LEAN.get(plain, plain)
    for node in cluster.startup_nodes:
        node.connection_class = LEAN.get(node.connection_class, node.connection_class)
    return cluster
