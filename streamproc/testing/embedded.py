"""A private redis-server on a free port with its own data dir: the embedded default for
``up`` and ``demo``, and the server the tests start."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from streamproc.errors import ConfigError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


PR_SET_PDEATHSIG = 1


def stopped_with_owner(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """On Linux, a ``preexec_fn`` that has the kernel send the child ``sig`` when its owner
    dies, however it dies (SIGKILL included), so a private server never outlives it; elsewhere
    None.

    The kernel sends it when the *thread* that forked the child ends, so start the child from
    a thread that lives as long as the owner: the main thread.  prctl is looked up before the
    fork, so the child runs as little Python as possible; an owner that died before the
    request took effect is seen as a changed parent pid."""
    if sys.platform != "linux":
        return None
    prctl = ctypes.CDLL(None).prctl
    owner = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, sig)
        if os.getppid() != owner:
            os._exit(1)

    return preexec


class EmbeddedRedis:
    """``with EmbeddedRedis() as server: server.url``; persistence is appendonly by default.

    On Linux the server is stopped when the thread that called :meth:`start` ends (see
    :func:`stopped_with_owner`), even if its process is killed; its data dir then stays."""

    def __init__(self, port: int | None = None, data_dir: Path | None = None, *extra: str) -> None:
        if shutil.which("redis-server") is None:
            raise ConfigError("redis-server is not on PATH: install Redis 7 or set a Redis URL")
        self.port = port or free_port()
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="streamproc-redis-"))
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        args = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--protected-mode",
            "yes",
            "--maxmemory-policy",
            "noeviction",
            "--logfile",
            "redis.log",
            *self.extra,
        ]
        # Its own session: Ctrl-C in a terminal signals the whole foreground process group,
        # and the server must outlive its owner's graceful shutdown, which stops it last.
        self.process = subprocess.Popen(  # noqa: S603
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=stopped_with_owner(),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.data_dir / "redis.log"
                detail = log.read_text()[-500:] if log.exists() else ""
                raise ConfigError(f"redis-server exited at start: {detail}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        raise ConfigError(f"redis-server did not answer on port {self.port} within {timeout}s")

    def kill(self) -> None:
        """SIGKILL the server (crash tests); the data dir stays for a restart."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()


class EmbeddedCluster:
    """``with EmbeddedCluster(masters=3) as cluster: cluster.url``: a local Redis Cluster of
    ``masters`` primaries and no replicas, each an :class:`EmbeddedRedis` with its own port and
    data dir (appendonly), joined with ``redis-cli --cluster create``.

    ``url`` names one node; a cluster client discovers the others and the slot map from it.
    """

    def __init__(self, masters: int = 3) -> None:
        if shutil.which("redis-cli") is None:
            raise ConfigError("redis-cli is not on PATH: it is needed to create a cluster")
        self.data_dir = Path(tempfile.mkdtemp(prefix="streamproc-cluster-"))
        self.nodes: list[EmbeddedRedis] = []
        for _ in range(masters):
            port = free_port()
            node_dir = self.data_dir / str(port)
            node_dir.mkdir()
            # The bus port is given, not left at port + 10000, which may be taken or too high.
            extra = ["--cluster-enabled", "yes", "--cluster-port", str(free_port())]
            extra += ["--cluster-config-file", f"nodes-{port}.conf"]
            self.nodes.append(EmbeddedRedis(port, node_dir, *extra))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self, timeout: float = 30.0) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        create = ["redis-cli", "--cluster", "create", *addresses]
        done = subprocess.run(  # noqa: S603
            [*create, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            self.cleanup()
            raise ConfigError(f"redis-cli --cluster create failed: {done.stdout[-500:]!r}")
        self._wait_until_ok(timeout)

    def _wait_until_ok(self, timeout: float) -> None:
        """Every node must say ``cluster_state:ok``: slots are agreed on by gossip, so a node
        may still answer CLUSTERDOWN for a moment after ``--cluster create`` returns."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._state(node) == "ok" for node in self.nodes):
                return
            time.sleep(0.05)
        self.cleanup()
        raise ConfigError(f"the cluster did not reach cluster_state:ok within {timeout}s")

    @staticmethod
    def _state(node: EmbeddedRedis) -> str:
        args = ["redis-cli", "-p", str(node.port), "cluster", "info"]
        info = subprocess.run(  # noqa: S603
            args,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
        for line in info.splitlines():
            if line.startswith("cluster_state:"):
                return line.partition(":")[2].strip()
        return ""

    def cleanup(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()
