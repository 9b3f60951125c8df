"""Running the real ``streamproc`` console script from tests, and what its checks share."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from streamproc import Keyspace
from streamproc.outbound.providers.settings import KEY_VARIABLES

ROOT = Path(__file__).resolve().parents[1]  # on a child's PYTHONPATH: ``tests`` importable
STREAMPROC = Path(sys.executable).parent / "streamproc"
TEST_AGENTS = "tests.agents_for_tests"  # for ``--import``
STATUS_KEYS = {
    "agent",
    "length",
    "lag",
    "pending",
    "consumers",
    "dead_letters",
    "awaiting",
    "desired",
    "unserved",
}
TIMEOUT = 60.0
# echo and sleep are not on the production entry points: a CLI process that serves or lists
# them imports them.
ECHO_AGENTS = ("--import", "streamproc.testing.agents")  # echo and sleep


@dataclass
class Run:
    code: int
    out: str
    err: str


def cli_env() -> dict[str, str]:
    """The test's environment without any STREAMPROC_* settings but the ledger's, and with
    the test agents importable (``--import tests.agents_for_tests``)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("STREAMPROC_") and k not in KEY_VARIABLES.values()
    }
    env["PYTHONPATH"] = str(ROOT)
    if "STREAMPROC_TEST_LEDGER_URL" in os.environ:
        env["STREAMPROC_TEST_LEDGER_URL"] = os.environ["STREAMPROC_TEST_LEDGER_URL"]
    return env


def run_sync(*args: str, env: dict[str, str] | None = None) -> Run:
    done = subprocess.run(
        [str(STREAMPROC), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=cli_env() if env is None else env,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


async def run(*args: str, env: dict[str, str] | None = None) -> Run:
    """Run the CLI without blocking the event loop (the in-process engine shares it), with
    ``env`` added to its environment."""
    proc = await asyncio.create_subprocess_exec(
        str(STREAMPROC),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**cli_env(), **(env or {})},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


def at(redis_url: str, keyspace: Keyspace) -> list[str]:
    return ["--redis-url", redis_url, "--namespace", keyspace.namespace]


def assert_one_line_error(result: Run, starts: str) -> None:
    assert result.code != 0, result
    assert "Traceback" not in result.err, result.err
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith(starts), result.err


async def submitted_count(redis: Redis, keyspace: Keyspace, workflow_id: str) -> int:
    events = await redis.xrange(keyspace.events(keyspace.shard_of(workflow_id)))
    return sum(
        1 for _, f in events if f[b"wf"] == workflow_id.encode() and f[b"kind"] == b"submitted"
    )


async def workflow_keys(redis: Redis, keyspace: Keyspace) -> list[bytes]:
    """The hash key of every workflow there, running (its hash) or ended (stowed in its
    archive)."""
    ids = set()
    for kind in ("wf", "past"):
        async for key in redis.scan_iter(match=f"{{{keyspace.namespace}:*:{kind}:*"):
            ids.add(key.decode().rsplit(f":{kind}:", 1)[1])
    return sorted(keyspace.workflow(workflow_id).encode() for workflow_id in ids)
