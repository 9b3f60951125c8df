"""Commands and SyncClient run on uvloop's event loop, or on asyncio's when the user says so;
any other choice is one line of error."""

from __future__ import annotations

import asyncio

import pytest

from streamproc.errors import ConfigError
from streamproc.transport import event_loop
from tests.cli_runner import cli_env, run_sync


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_by_default_and_asyncio_when_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(event_loop.CHOICE, raising=False)
    assert event_loop.run(loop_module()).startswith("uvloop")
    monkeypatch.setenv(event_loop.CHOICE, "asyncio")
    assert event_loop.run(loop_module()).startswith("asyncio")


def test_an_unknown_loop_is_refused_before_anything_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(event_loop.CHOICE, "trio")
    main = loop_module()
    with pytest.raises(ConfigError, match="STREAMPROC_EVENT_LOOP='trio': use uvloop or asyncio"):
        event_loop.run(main)
    assert main.cr_frame is None  # closed, not left to warn that it was never awaited


def test_a_command_refuses_an_unknown_loop_in_one_line() -> None:
    done = run_sync("status", env={**cli_env(), event_loop.CHOICE: "trio"})
    assert done.code == 1
    assert done.err.strip() == "error: STREAMPROC_EVENT_LOOP='trio': use uvloop or asyncio"
