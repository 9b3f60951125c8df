"""What running an agent comes to, for each way an agent can end: no Redis involved."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from streamproc import Keyspace, RedisSettings
from streamproc.engine.outcome import MAX_ERROR_CHARS, Outcome, run_agent
from streamproc.errors import PermanentError, RetryLater, WaitFor
from streamproc.registry import Adjust, Task
from streamproc.runtime import Runtime
from streamproc.store.codec import AdjustRequest, TaskEvent

CAP = 1000


def event(timeout: float | None = None) -> TaskEvent:
    return TaskEvent(b"1-0", "wf", "t", "agent", 1, {"q": 1}, {"up": 2}, timeout)


async def outcome_of(agent: Any, timeout: float | None = None) -> Outcome:
    return await run_agent(agent, event(timeout), CAP)


async def test_a_result_is_ok_with_its_json_and_the_agent_sees_input_and_deps() -> None:
    async def agent(task: Task) -> dict[str, Any]:
        return {"input": task.input, "deps": task.deps, "attempt": task.attempt}

    outcome = await outcome_of(agent)
    assert outcome.kind == b"ok"
    assert orjson.loads(outcome.output) == {"input": {"q": 1}, "deps": {"up": 2}, "attempt": 1}


async def test_the_agent_is_handed_the_runtime_of_the_worker_running_it() -> None:
    runtime = Runtime(RedisSettings(), Keyspace("t"))
    seen: list[Runtime | None] = []
    outcome = await run_agent(lambda task: seen.append(task.runtime), event(), CAP, runtime)
    assert outcome == Outcome(b"ok", b"null")
    assert seen == [runtime]


async def test_an_agent_run_outside_a_worker_has_no_runtime() -> None:
    assert await outcome_of(lambda task: task.runtime is None) == Outcome(b"ok", b"true")


async def test_a_plain_function_runs_too() -> None:
    assert await outcome_of(lambda task: task.id) == Outcome(b"ok", b'"t"')


async def test_an_exception_is_an_error_with_its_type_and_text_cut_to_the_limit() -> None:
    def agent(task: Task) -> None:
        raise ValueError("x" * 2 * MAX_ERROR_CHARS)

    outcome = await outcome_of(agent)
    assert outcome.kind == b"error"
    assert outcome.output.startswith(b"ValueError: xxx")
    assert len(outcome.output) == MAX_ERROR_CHARS


async def test_a_permanent_error_is_fatal() -> None:
    def agent(task: Task) -> None:
        raise PermanentError("bad input")

    outcome = await outcome_of(agent)
    assert (outcome.kind, outcome.output) == (b"fatal", b"PermanentError: bad input")
    assert outcome.traceback.endswith("PermanentError: bad input\n")


async def test_the_task_timeout_is_an_error_that_names_it() -> None:
    async def agent(task: Task) -> None:
        await asyncio.Event().wait()

    assert await outcome_of(agent, timeout=0.05) == Outcome(b"error", b"timed out after 0.05s")


@pytest.mark.parametrize("ending", ["returns", "raises"])
async def test_an_agent_that_outlives_its_timeout_by_catching_the_cancel_still_timed_out(
    ending: str,
) -> None:
    async def agent(task: Task) -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            if ending == "raises":
                raise ValueError("cleanup failed") from None
        return "late"

    assert await outcome_of(agent, timeout=0.05) == Outcome(b"error", b"timed out after 0.05s")


@pytest.mark.parametrize("timeout", [None, 60.0], ids=["no-task-timeout", "within-it"])
async def test_an_agents_own_timeout_error_is_reported_as_itself(timeout: float | None) -> None:
    async def agent(task: Task) -> None:
        raise TimeoutError("provider read timed out")

    outcome = await outcome_of(agent, timeout)
    assert (outcome.kind, outcome.output) == (b"error", b"TimeoutError: provider read timed out")


async def test_retry_later_is_a_wait_in_milliseconds() -> None:
    def agent(task: Task) -> None:
        raise RetryLater(2.5, "every provider spent", give_up_after=60)

    outcome = await outcome_of(agent)
    assert outcome == Outcome(b"wait", b"every provider spent", wait=(2500, 60_000))


@pytest.mark.parametrize(
    ("result", "error"),
    [
        ({1, 2}, b"result is not JSON-serialisable: "),
        ({"score": float("nan")}, b"result is not JSON-serialisable: NaN and Infinity are not"),
        ([None, -float("inf")], b"result is not JSON-serialisable: NaN and Infinity are not"),
        ("x" * CAP, b"result too large: 1002 bytes, over the 1000-byte cap"),
        (Adjust("bad id!", 1, "why"), b"Adjust names an invalid task id 'bad id!'"),
    ],
    ids=["not-json", "nan", "infinity", "over-the-cap", "bad-adjust-target"],
)
async def test_a_result_that_cannot_be_stored_is_fatal(result: Any, error: bytes) -> None:
    outcome = await outcome_of(lambda task: result)
    assert outcome.kind == b"fatal"
    assert outcome.output.startswith(error), outcome.output


async def test_an_adjust_keeps_its_result_and_asks_for_the_rerun() -> None:
    outcome = await outcome_of(lambda task: Adjust("up", {"better": True}, "weak", result=[1]))
    assert outcome == Outcome(b"adjust", b"[1]", AdjustRequest("up", "weak", b'{"better":true}'))


@pytest.mark.parametrize("returned", [False, True])
async def test_a_wait_for_a_signal_is_an_await_naming_it_and_its_timeout(returned: bool) -> None:
    async def agent(task: Task) -> Any:
        wait = WaitFor("approval", timeout=1.5)
        if returned:
            return wait
        raise wait

    outcome = await outcome_of(agent)
    assert (outcome.kind, outcome.output, outcome.awaits) == (b"await", b"approval", 1500)


@pytest.mark.parametrize(
    ("wait", "error"),
    [
        (WaitFor("no spaces"), "WaitFor: invalid signal name 'no spaces'"),
        (WaitFor("ok", timeout=-1), "WaitFor: timeout must be seconds in (0, 604800]"),
    ],
)
async def test_a_malformed_wait_fails_for_good(wait: WaitFor, error: str) -> None:
    async def agent(task: Task) -> Any:
        raise wait

    outcome = await outcome_of(agent)
    assert (outcome.kind, outcome.output.decode()) == (b"fatal", error)
