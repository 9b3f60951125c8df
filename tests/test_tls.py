"""rediss:// with a CA the test makes: a workflow runs over TLS with certificate and hostname
checks on; plaintext, a wrong CA and switched-off checks are refused."""

from __future__ import annotations

import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError, TimeoutError

from streamproc import Client, ClientSettings, Keyspace, RedisSettings, SyncClient
from streamproc.config import redacted
from streamproc.errors import ConfigError
from streamproc.testing.embedded import free_port
from tests.conftest import Engine, until, worker_process
from tests.daemon import Daemon


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


def make_server_cert(directory: Path, ca_key: Path, ca_cert: Path) -> tuple[Path, Path]:
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=DNS:localhost\n")
    subprocess.run(
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
         "-keyout", str(key), "-out", str(csr)],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
         "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return key, cert


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, Path]]:
    """A redis-server answering only TLS; yields its port, the right CA and a wrong one."""
    certs = tmp_path_factory.mktemp("certs")
    ca_key, ca_cert = make_ca(certs, "test-ca")
    _, wrong_ca = make_ca(certs, "other-ca")
    key, cert = make_server_cert(certs, ca_key, ca_cert)
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(cert), "--tls-key-file", str(key),
         "--tls-ca-cert-file", str(ca_cert), "--tls-auth-clients", "no",
         "--dir", str(certs), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_tls(port, ca_cert)
        yield port, ca_cert, wrong_ca
    finally:
        server.terminate()
        server.wait(10)


def wait_for_tls(port: int, ca: Path, timeout: float = 10.0) -> None:
    context = ssl.create_default_context(cafile=str(ca))

    def answers() -> bool:
        try:
            with (
                socket.create_connection(("localhost", port), 0.5) as raw,
                context.wrap_socket(raw, server_hostname="localhost") as tls,
            ):
                tls.sendall(b"PING\r\n")
                return tls.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    until(answers, f"redis-server answering over TLS on port {port}", timeout)


async def test_a_workflow_runs_over_tls_with_checks_on(tls_server: tuple[int, Path, Path]) -> None:
    port, ca, _ = tls_server
    url = f"rediss://localhost:{port}/0?ssl_ca_certs={ca}"
    keyspace = Keyspace("tls")
    engine = Engine(url, keyspace)
    engine.start_resolver()
    engine.start_worker(("echo",))
    try:
        async with Client(url, ClientSettings(keyspace=keyspace)) as client:
            state = await client.wait(
                await client.submit({"tasks": [{"id": "a", "agent": "echo"}]}), 20
            )
    finally:
        await engine.stop()
    assert state.status == "completed"


def test_a_workflow_runs_over_tls_between_processes_on_uvloop(
    tls_server: tuple[int, Path, Path],
) -> None:
    """Commands and SyncClient run on uvloop's event loop (the test above, on asyncio's):
    its TLS transport carries the worker's and resolver's connections and the submit lane."""
    port, ca, _ = tls_server
    url = f"rediss://localhost:{port}/0?ssl_ca_certs={ca}"
    keyspace = Keyspace("tls-uvloop")
    daemons = [worker_process(url, keyspace, "echo"), Daemon(url, keyspace.namespace, "resolver")]
    try:
        with SyncClient(url, ClientSettings(keyspace=keyspace)) as client:
            state = client.wait(client.submit({"tasks": [{"id": "a", "agent": "echo"}]}), 20)
    finally:
        for daemon in daemons:
            daemon.kill()
    assert state.status == "completed", [d.log_text() for d in daemons]


async def test_plaintext_and_a_wrong_ca_are_refused(tls_server: tuple[int, Path, Path]) -> None:
    port, _, wrong_ca = tls_server
    for url in (
        f"redis://localhost:{port}/0",
        f"rediss://localhost:{port}/0?ssl_ca_certs={wrong_ca}",
    ):
        quick = replace(RedisSettings.from_url(url), socket_timeout=1.0, command_retries=0)
        redis = quick.connect()
        try:
            with pytest.raises((ConnectionError, TimeoutError)):
                await redis.ping()
        finally:
            await redis.aclose()


def test_switching_certificate_checks_off_needs_the_insecure_flag() -> None:
    for query in ("ssl_cert_reqs=none", "ssl_cert_reqs=optional", "ssl_check_hostname=false"):
        url = f"rediss://localhost:6380/0?{query}"
        with pytest.raises(ConfigError, match="turns TLS certificate checks off"):
            RedisSettings.from_url(url)
        assert RedisSettings.from_url(url, insecure=True).url == url


def test_passwords_in_urls_are_redacted_from_messages() -> None:
    assert redacted("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert redacted("rediss://:s3cret@host/0") == "rediss://:***@host/0"
    assert redacted("redis://host:6379/0") == "redis://host:6379/0"
