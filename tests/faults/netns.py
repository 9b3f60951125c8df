"""A network namespace joined to this one by a veth pair, for rows C1 and C2: a process started
in it (``prefix``) reaches the host only over that link, which a test takes down (a partition)
or filters with iptables (a blackhole).  Needs root and iproute2; ``unavailable()`` says why
not.  Redis must listen on ``host_ip`` too (``--bind "127.0.0.1 <host_ip>"``).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import uuid
from types import TracebackType


def unavailable() -> str | None:
    """Why namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"ip netns does not work here: {probe.stderr.strip()}"
    return None


class NetNamespace:
    """``with NetNamespace() as ns``: a fresh namespace and veth pair with unique names on a
    random /30 of 10.213.0.0/16; both are deleted on exit."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.name = f"sp{tag}"
        self.host_veth = f"sph{tag}"  # interface names stay under 16 bytes
        self.inner_veth = f"spn{tag}"
        base = random.randrange(0, 1 << 16, 4)
        self.host_ip = f"10.213.{base >> 8}.{(base & 255) + 1}"
        self.inner_ip = f"10.213.{base >> 8}.{(base & 255) + 2}"

    @property
    def prefix(self) -> tuple[str, ...]:
        """Prepend to a command to run it inside the namespace."""
        return ("ip", "netns", "exec", self.name)

    def url(self, port: int) -> str:
        """The Redis URL a process inside uses for a server on ``port`` of the host side."""
        return f"redis://{self.host_ip}:{port}/0"

    def link(self, up: bool) -> None:
        """Bring the host end of the pair up or down: down, the inner end loses its carrier
        and every packet either way is dropped (no RST, no ICMP): a partition."""
        _ip("link", "set", self.host_veth, "up" if up else "down")

    def run(self, *command: str) -> None:
        """Run ``command`` inside the namespace (``iptables ...``, say)."""
        subprocess.run([*self.prefix, *command], check=True, capture_output=True)

    def __enter__(self) -> NetNamespace:
        try:
            _ip("netns", "add", self.name)
            _ip("link", "add", self.host_veth, "type", "veth", "peer", "name", self.inner_veth)
            _ip("link", "set", self.inner_veth, "netns", self.name)
            _ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_veth)
            _ip("link", "set", self.host_veth, "up")
            self.run("ip", "addr", "add", f"{self.inner_ip}/30", "dev", self.inner_veth)
            self.run("ip", "link", "set", self.inner_veth, "up")
            self.run("ip", "link", "set", "lo", "up")
        except BaseException:
            self.delete()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.delete()

    def delete(self) -> None:
        """Remove the namespace (which takes the pair with it) and the host end if left."""
        for command in (("netns", "delete", self.name), ("link", "delete", self.host_veth)):
            subprocess.run(["ip", *command], capture_output=True, check=False)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)
