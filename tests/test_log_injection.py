"""Log injection: text from agents (a RetryLater reason, an error) reaches the worker's log, yet
a newline, ANSI escapes or a Unicode line separator in it cannot forge a record or drive the
terminal.  Each record stays one line, with the control characters escaped, in JSON lines and
in the text format alike (a traceback's lines, escaped too, are indented below its record)."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections.abc import Callable
from pathlib import Path

from streamproc import Client
from tests.agents_for_tests import FORGED
from tests.conftest import Engine
from tests.daemon import Daemon

RAW_CONTROLS = ("\x1b", "\x9b", "\u2028", "\r")
TEXT_RECORD = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) \S+( \[[^]]*\])?: "
)


async def _log_of_forged_run(
    client: Client, worker_processes: Callable[..., Daemon], log_format: str
) -> tuple[str, list[str]]:
    """Run the forger task to completion in a worker logging in ``log_format``; the workflow
    id and the worker's log lines."""
    process = worker_processes("forger", "--log-format", log_format, "-v")
    workflow_id = await client.submit({"tasks": [{"id": "forge", "agent": "forger"}]})
    state = await client.wait(workflow_id, timeout=20)
    assert (state.status, state.tasks[0].attempt) == ("completed", 3)
    process.signal(signal.SIGTERM)
    assert await process.wait() == 0
    text = await asyncio.to_thread(Path(process.log.name).read_text)
    for raw in RAW_CONTROLS:
        assert raw not in text, f"raw {raw!r} in the log"
    return workflow_id, text.rstrip("\n").split("\n")


async def test_hostile_agent_text_stays_inside_one_escaped_json_record(
    resolver_only: Engine, client: Client, worker_processes: Callable[..., Daemon]
) -> None:
    workflow_id, lines = await _log_of_forged_run(client, worker_processes, "json")
    records = [json.loads(line) for line in lines]  # every line is one whole record
    assert not any(r["msg"] == "forged" for r in records)
    [waits] = [r for r in records if r["msg"].startswith("task waits")]
    assert waits["msg"].endswith(f": {FORGED}"), "escaped, not dropped: it reads back intact"
    assert (waits["wf"], waits["task"], waits["attempt"]) == (workflow_id, "forge", 1)
    [failed] = [r for r in records if r["msg"].startswith("task failed")]
    assert (failed["msg"], failed["attempt"]) == (f"task failed: {RuntimeError(FORGED)!r}", 2)


async def test_hostile_agent_text_stays_inside_one_escaped_text_line(
    resolver_only: Engine, client: Client, worker_processes: Callable[..., Daemon]
) -> None:
    workflow_id, lines = await _log_of_forged_run(client, worker_processes, "text")
    records = [line for line in lines if not line.startswith("    ")]  # not a traceback's
    assert all(TEXT_RECORD.match(line) for line in records), lines
    forged = '    {"level": "error", "msg": "forged"}\\x1b[31mred'
    assert any(line.startswith(forged) for line in lines), "indented and escaped too"
    escaped = FORGED.encode("unicode_escape").decode()
    ids = f"[wf={workflow_id} task=forge attempt=1 agent=forger"
    assert any(ids in line and line.endswith(f"]: task waits 0.01s: {escaped}") for line in lines)
