"""Daemons check their Redis before reading: an evicting policy is refused, no persistence
is warned about."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from redis.asyncio import Redis

from streamproc.errors import ConfigError
from streamproc.testing.embedded import EmbeddedRedis
from streamproc.transport.preflight import check_server, unauthenticated_remote
from tests.cli_runner import ECHO_AGENTS

STREAMPROC = Path(sys.executable).parent / "streamproc"


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl"])
def test_a_worker_refuses_a_redis_that_evicts_keys(policy: str) -> None:
    with EmbeddedRedis(None, None, "--maxmemory-policy", policy) as server:
        done = subprocess.run(
            [str(STREAMPROC), "worker", "--agent", "echo", *ECHO_AGENTS, "--redis-url", server.url],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    assert f"Redis evicts keys (maxmemory-policy {policy})" in done.stderr
    assert "set maxmemory-policy noeviction" in done.stderr
    assert "Traceback" not in done.stderr


async def test_a_redis_without_persistence_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with EmbeddedRedis(None, None, "--appendonly", "no") as server:
        redis = Redis.from_url(server.url)
        try:
            with caplog.at_level(logging.WARNING, logger="streamproc.transport.preflight"):
                await check_server(redis)
            assert "Redis persists nothing" in caplog.text
            caplog.clear()
            await redis.config_set("appendonly", "yes")
            await check_server(redis)
            assert caplog.text == ""
            await redis.config_set("maxmemory-policy", "allkeys-random")
            with pytest.raises(ConfigError, match="allkeys-random"):
                await check_server(redis)
        finally:
            await redis.aclose()


async def test_each_warning_is_said_once_a_process_for_each_redis(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``demo`` runs a worker and a resolver in one process, each with its own client."""
    with (
        EmbeddedRedis(None, None, "--appendonly", "no") as one,
        EmbeddedRedis(None, None, "--appendonly", "no") as other,
    ):
        clients = [Redis.from_url(server.url) for server in (one, one, other)]
        try:
            with caplog.at_level(logging.WARNING, logger="streamproc.transport.preflight"):
                for redis in clients:
                    await check_server(redis)
        finally:
            for redis in clients:
                await redis.aclose()
    warned = [r.getMessage() for r in caplog.records if "persists nothing" in r.getMessage()]
    assert len(warned) == 2  # one for each Redis


def test_an_unauthenticated_remote_redis_is_flagged() -> None:
    assert unauthenticated_remote({"host": "10.0.0.5"})
    assert not unauthenticated_remote({"host": "10.0.0.5", "password": "pw"})
    assert not unauthenticated_remote({"host": "127.0.0.1"})
    assert not unauthenticated_remote({"host": "::1"})
    assert not unauthenticated_remote({"path": "/tmp/redis.sock"})  # a unix socket is local
