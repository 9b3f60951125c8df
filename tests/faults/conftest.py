"""The fault suite runs with a canary as every provider key (security check 7).

For the whole package the key variables hold ``SPCANARY-<uuid>``, which every worker and
daemon process inherits, and the fake providers expect it (a test's own ``keys=`` still
wins), so the searches of rows G1-G5 really send it.  The canary is then searched for in
every file of every redis-server data dir the suite used (the append-only log, the server's
log: a test's own server's just before the dir is removed, the shared server's once a probe
written last is in its log), in every daemon's log, and in every record the in-process
engines log.  The last test's teardown fails naming each place it was found, and also when
fakes were made but no request brought one the canary.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Coroutine, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from redis import Redis

from streamproc.outbound.providers.settings import KEY_VARIABLES
from streamproc.testing.embedded import EmbeddedRedis
from streamproc.testing.fakes import FakeServer
from tests.conftest import until
from tests.daemon import STARTED

CANARY = f"SPCANARY-{uuid.uuid4()}"
KEY_ENVIRONMENT = (*KEY_VARIABLES.values(), "STREAMPROC_LLM_API_KEY")


class Sweep(logging.Handler):
    """Where the canary turned up, and how many requests brought it to a fake; as a log
    handler it reads every record logged in this process."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.fakes = 0  # fake servers made
        self.sent = 0  # requests that reached one with the canary as their key

    def emit(self, record: logging.LogRecord) -> None:
        if CANARY in self.format(record):
            self.found.append(f"a record of logger {record.name} in {running()}")

    def files(self, paths: Iterable[Path], where: str = "") -> None:
        for path in paths:
            if CANARY.encode() in path.read_bytes():
                self.found.append(f"{path}{where}")

    def data_dir(self, server: EmbeddedRedis) -> None:
        files = (path for path in server.data_dir.rglob("*") if path.is_file())
        self.files(files, f" (a redis-server data dir, at {running()})")


def running() -> str:
    """The test (and its phase) running now."""
    return os.environ.get("PYTEST_CURRENT_TEST", "the end of the suite")


def swept_before_removal(sweep: Sweep) -> Callable[[EmbeddedRedis], None]:
    """``EmbeddedRedis.cleanup`` that first stops the server (its append-only log flushed)
    and searches its data dir."""
    cleanup = EmbeddedRedis.cleanup

    def swept(server: EmbeddedRedis) -> None:
        server.stop()
        sweep.data_dir(server)
        cleanup(server)

    return swept


def expecting_the_canary(sweep: Sweep) -> Callable[..., None]:
    """``FakeServer.__init__`` with the canary as the key a fake expects by default."""
    init = FakeServer.__init__

    def canary_init(fake: FakeServer, key: str | None = None, **options: Any) -> None:
        init(fake, key or CANARY, **options)
        sweep.fakes += 1

    return canary_init


def counting_the_canary(sweep: Sweep) -> Callable[..., Coroutine[Any, Any, web.StreamResponse]]:
    """``FakeServer._handle`` that counts the requests presenting the canary."""
    handle = FakeServer._handle

    async def counted(fake: FakeServer, request: web.Request) -> web.StreamResponse:
        if fake.presented_key(request) == CANARY:
            sweep.sent += 1
        return await handle(fake, request)

    return counted


def flushed(server: EmbeddedRedis, timeout: float = 10.0) -> None:
    """Write a probe and wait until it is in the append-only log: the log is written in
    order, so whatever the suite wrote before is there too, and a search of the files finds
    what Redis wrote."""
    probe = f"canary-probe-{uuid.uuid4().hex}"
    with Redis.from_url(server.url) as redis:
        redis.set(probe, probe)
        redis.delete(probe)
    until(lambda: probe.encode() in append_only_log(server), "the probe in the AOF", timeout)


def append_only_log(server: EmbeddedRedis) -> bytes:
    return b"".join(path.read_bytes() for path in (server.data_dir / "appendonlydir").iterdir())


@pytest.fixture(scope="package", autouse=True)
def canary_keys(redis_server: EmbeddedRedis) -> Iterator[None]:
    """The canary as every provider key for the package, then the sweep (see the module)."""
    sweep, daemons = Sweep(), len(STARTED)
    with Redis.from_url(redis_server.url) as redis:
        redis.config_set("rdbcompression", "no")  # a rewritten log's base stays searchable
    root, level = logging.getLogger(), logging.getLogger().level
    root.addHandler(sweep)
    root.setLevel(min(level, logging.INFO))  # in-process engines log as much as daemons (-v)
    try:
        with pytest.MonkeyPatch.context() as patch:
            for variable in KEY_ENVIRONMENT:
                patch.setenv(variable, CANARY)
            patch.setattr(FakeServer, "__init__", expecting_the_canary(sweep))
            patch.setattr(FakeServer, "_handle", counting_the_canary(sweep))
            patch.setattr(EmbeddedRedis, "cleanup", swept_before_removal(sweep))
            yield
    finally:
        root.removeHandler(sweep)
        root.setLevel(level)
    flushed(redis_server)
    sweep.data_dir(redis_server)
    started = STARTED[daemons:]
    sweep.files(Path(daemon.log.name) for daemon in started)
    found = "; ".join(dict.fromkeys(sweep.found))
    assert not sweep.found, f"the canary {CANARY} was found in: {found}"
    assert all(CANARY in daemon.env.values() for daemon in started), "a daemon had no canary"
    assert sweep.sent or not sweep.fakes, "fake providers were made, none got the canary"
