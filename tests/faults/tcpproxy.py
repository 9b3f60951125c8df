"""An asyncio TCP fault proxy: the network faults of rows C2-C4 between one engine process and
Redis, where no kernel tool (``tc netem``) can shape traffic, and the address that moves to the
promoted replica in row B6.

    async with FaultProxy(redis_port) as proxy:
        worker(proxy.url, ...)
        proxy.delay, proxy.jitter = 0.02, 0.01  # seconds per chunk and direction, order kept
        proxy.bandwidth = 256_000  # bytes/s per connection and direction
        proxy.reset()  # RST every open connection
        proxy.reset_after_bytes = 2_000  # RST each connection once it carried that many
        proxy.blackhole()  # forward nothing, close nothing, send no RST
        proxy.heal()  # a clean pipe again
        proxy.repoint(replica_port)  # reset every open connection; new ones go there

Every knob applies at once, to open connections and new ones.  A blackhole keeps reading both
sides and holds what it read, as a dropped path holds a TCP sender's unacknowledged bytes; on
heal they are delivered in order, as retransmission would.  Reading on also shows when a client
gives up: ``longest_wait()`` is the longest a client waited for a reply (from its request to the
first reply byte, or to its giving up), the figure that bounds a hung socket (row C2).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from types import TracebackType

CHUNK = 65536
# A paced write sends at most this many seconds' worth of bytes at once.
PACE_SLICE = 0.05


class FaultProxy:
    """Listens on ``host`` (a free port) and forwards each connection to ``upstream``."""

    def __init__(
        self, upstream_port: int, upstream_host: str = "127.0.0.1", host: str = "127.0.0.1"
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = 0
        self.delay = 0.0
        self.jitter = 0.0
        self.bandwidth: float | None = None
        self.reset_after_bytes: int | None = None
        self.connections = 0  # accepted so far
        self.resets = 0  # connections reset by reset() or reset_after_bytes
        self.gave_up = 0  # clients that closed their connection while waiting for a reply
        self._longest_wait = 0.0  # of the finished waits
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self._rng = random.Random()

    @property
    def url(self) -> str:
        """A ``redis://`` URL naming the proxy (it forwards bytes; it speaks no Redis)."""
        return f"redis://{self.host}:{self.port}/0"

    def blackhole(self) -> None:
        """Stop forwarding both ways; connections stay open and new ones are accepted."""
        self._flowing.clear()

    def heal(self) -> None:
        """No delay, no cap, no resets; held bytes flow on."""
        self.delay = self.jitter = 0.0
        self.bandwidth = None
        self.reset_after_bytes = None
        self._flowing.set()

    def reset(self) -> None:
        """Reset every open connection, both its client and its upstream side."""
        for link in list(self._links):
            link.reset()

    def repoint(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        """Forward new connections to another upstream, and reset the open ones so that their
        clients reconnect there: a failover moving the address clients know to the promoted
        replica (a virtual IP, or a Sentinel-aware client learning the new primary)."""
        self.upstream = (upstream_host, upstream_port)
        self.reset()

    def longest_wait(self) -> float:
        """Seconds of the longest wait for a reply, finished or still going."""
        now = asyncio.get_running_loop().time()
        going = [now - link.waiting_since for link in self._links if link.waiting_since]
        return max([self._longest_wait, *going])

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        self.heal()
        running = [link.task for link in self._links]
        self.reset()
        await asyncio.gather(*running, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            upstream = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        link = _Link(self, (reader, writer), upstream)
        self._links.add(link)
        try:
            # A reset cancels the link's own task, never this one (asyncio's server would
            # report a cancelled handler as an error).
            await asyncio.wait([link.task])
        finally:
            self._links.discard(link)

    def _due(self, after: float) -> float:
        """When a chunk read now may be delivered: the delay plus or minus the jitter, but
        never before the chunk read before it (``after``), so the byte order is kept."""
        spread = self._rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0
        now = asyncio.get_running_loop().time()
        return max(after, now + max(0.0, self.delay + spread))


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _Link:
    """One client connection and its upstream connection: a reader and a writer each way,
    joined by a queue of ``(due time, bytes)``; ``b""`` marks the end of a direction."""

    def __init__(self, proxy: FaultProxy, client: Stream, upstream: Stream) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.carried = 0  # bytes delivered, both ways
        self.waiting_since: float | None = None
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        to_upstream: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        to_client: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        try:
            async with asyncio.TaskGroup() as pumps:
                pumps.create_task(self._read(self.client[0], to_upstream, from_client=True))
                pumps.create_task(self._write(to_upstream, self.upstream[1], to_client=False))
                pumps.create_task(self._read(self.upstream[0], to_client, from_client=False))
                pumps.create_task(self._write(to_client, self.client[1], to_client=True))
        except* OSError:
            pass  # either side went away: close both
        finally:
            for _, writer in (self.client, self.upstream):
                writer.transport.abort()

    async def _read(
        self,
        reader: asyncio.StreamReader,
        queue: asyncio.Queue[tuple[float, bytes]],
        from_client: bool,
    ) -> None:
        due = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                data = await reader.read(CHUNK)
            except OSError:
                data = b""
            if from_client and data and self.waiting_since is None:
                self.waiting_since = loop.time()
            if from_client and not data and self.waiting_since is not None:
                self.proxy.gave_up += 1
                self._end_wait()
            due = self.proxy._due(due)
            queue.put_nowait((due, data))
            if not data:
                return

    async def _write(
        self,
        queue: asyncio.Queue[tuple[float, bytes]],
        writer: asyncio.StreamWriter,
        to_client: bool,
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, data = await queue.get()
            await asyncio.sleep(max(0.0, due - loop.time()))
            await self.proxy._flowing.wait()
            if not data:
                writer.close()
                return
            limit = self.proxy.reset_after_bytes
            if limit is not None and self.carried + len(data) >= limit:
                writer.write(data[: max(0, limit - self.carried)])
                self.reset()
                return
            if to_client and self.waiting_since is not None:
                self._end_wait()
            await self._send(writer, data)

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        """Write ``data``, paced to the bandwidth cap when there is one."""
        while data:
            rate = self.proxy.bandwidth
            piece = data if rate is None else data[: max(1, int(rate * PACE_SLICE))]
            data = data[len(piece) :]
            writer.write(piece)
            await writer.drain()
            self.carried += len(piece)
            if rate is not None:
                await asyncio.sleep(len(piece) / rate)

    def _end_wait(self) -> None:
        assert self.waiting_since is not None
        waited = asyncio.get_running_loop().time() - self.waiting_since
        self.proxy._longest_wait = max(self.proxy._longest_wait, waited)
        self.waiting_since = None

    def reset(self) -> None:
        """Close both sides with an RST (SO_LINGER 0) rather than a FIN; pending bytes are
        dropped, as a peer's reset drops them.  A link already ending is left alone."""
        if self.task.done() or self.task.cancelling():
            return
        self.proxy.resets += 1
        self.waiting_since = None
        for _, writer in (self.client, self.upstream):
            sock = writer.transport.get_extra_info("socket")
            with contextlib.suppress(OSError):  # that side may have closed already
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        self.task.cancel()
