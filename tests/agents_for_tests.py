"""Agents the tests use, ``echo`` and ``sleep`` included; importable by worker subprocesses
with ``--import tests.agents_for_tests``."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import redis
import redis.asyncio

import streamproc.testing.agents  # noqa: F401  (registers echo and sleep)
from streamproc import Adjust, ConfigError, PermanentError, RetryLater, Spawn, Task, TaskSpec, agent
from streamproc.errors import ProviderError
from streamproc.outbound.secret import Secret

_ledger: redis.Redis | None = None
SECRET = "SPSECRET-held-in-a-local"  # noqa: S105 (what no traceback may show)
# A would-be second log record, colour and a screen clear (7- and 8-bit CSI), a line separator.
FORGED = 'done\n{"level": "error", "msg": "forged"}\x1b[31mred\x1b[0m\u2028\x9b2J'


def ledger() -> redis.Redis:
    """Each execution appends (wf, task, attempt, pid) here, outside the engine's keys."""
    global _ledger
    if _ledger is None:
        _ledger = redis.Redis.from_url(os.environ["STREAMPROC_TEST_LEDGER_URL"])
    return _ledger


@agent("ledger")
def record(task: Task) -> Any:
    """Sync agent (runs in a thread): record the execution, sleep input['seconds'], succeed."""
    ledger().rpush(f"ledger:{task.workflow}", f"{task.id} {task.attempt} {os.getpid()}")
    seconds = task.input.get("seconds", 0) if isinstance(task.input, dict) else 0
    if seconds:
        time.sleep(seconds)
    return {"task": task.id, "deps": sorted(task.deps)}


@agent("flaky")
async def flaky(task: Task) -> Any:
    """Fail the first input['fail'] attempts, then succeed."""
    if task.attempt <= task.input["fail"]:
        raise RuntimeError(f"flaky failure on attempt {task.attempt}")
    return {"attempt": task.attempt}


@agent("poison")
async def poison(task: Task) -> Any:
    raise ValueError("poisoned input")


@agent("fatal")
async def fatal(task: Task) -> Any:
    raise PermanentError("cannot ever work")


@agent("misconfigured")
async def misconfigured(task: Task) -> Any:
    raise ConfigError("set EXAMPLE_API_KEY to use this agent")


@agent("hang")
async def hang(task: Task) -> Any:
    await asyncio.sleep(3600)


@agent("crash")
async def crash(task: Task) -> Any:
    """Kill the whole worker process, as a segfault would."""
    ledger().rpush(f"ledger:{task.workflow}", f"{task.id} {task.attempt} {os.getpid()}")
    os._exit(137)


@agent("writer")
async def writer(task: Task) -> Any:
    """Write input['text'] (the seed's execution step, reduced to its output length)."""
    ledger().rpush(f"ledger:{task.workflow}", f"{task.id} {task.attempt} {os.getpid()}")
    return task.input["text"]


@agent("judge")
async def judge(task: Task) -> Any:
    """The seed's evaluate-and-adjust rule: a dependency's result that is missing or under 50
    characters is weak; ask for the task named in input['adjust'] to run again with the input
    given there."""
    ledger().rpush(f"ledger:{task.workflow}", f"{task.id} {task.attempt} {os.getpid()}")
    weak = [dep for dep, result in sorted(task.deps.items()) if len(str(result or "")) < 50]
    for target, new_input in task.input.get("adjust", {}).items():
        if weak:
            return Adjust(target, new_input, f"result of {weak[0]} under 50 characters", "weak")
    return "satisfied" if not weak else "weak"


@agent("patient")
async def patient(task: Task) -> Any:
    """Wait (RetryLater) until attempt input['ok_at'], giving up after input['give_up'] s."""
    if task.attempt < task.input["ok_at"]:
        raise RetryLater(0.05, "every provider is out", give_up_after=task.input["give_up"])
    return {"attempt": task.attempt}


@agent("retry_later")
async def retry_later(task: Task) -> Any:
    """Raise RetryLater with the arguments input['args'], whatever they are."""
    raise RetryLater(*task.input["args"])


@agent("fixable")
async def fixable(task: Task) -> Any:
    """Fail for good until an operator's fix, the ledger key ``fixed:<workflow>``, is set."""
    if not ledger().exists(f"fixed:{task.workflow}"):
        raise PermanentError("not fixed yet")
    return {"fixed": task.id, "attempt": task.attempt}


@agent("repairable")
async def repairable(task: Task) -> Any:
    """Fail for good until the ledger key input['fixed_by'] is set, whatever the workflow."""
    if not ledger().exists(task.input["fixed_by"]):
        raise PermanentError("not repaired yet")
    return {"repaired": task.id}


@agent("gate")
async def gate(task: Task) -> Any:
    """Run until the test opens the gate: it pushes to the ledger list ``open:<wf>:<task>``."""
    ledger().rpush(f"ledger:{task.workflow}", f"{task.id} {task.attempt} {os.getpid()}")
    async with redis.asyncio.Redis.from_url(os.environ["STREAMPROC_TEST_LEDGER_URL"]) as r:
        await r.blpop([f"open:{task.workflow}:{task.id}"], timeout=0)
    return {"gate": task.id, "deps": sorted(task.deps)}


@agent("big")
async def big(task: Task) -> Any:
    """Return a string of input["mb"] MiB (a result may take up to 1 MiB)."""
    ledger().rpush(f"ledger:{task.workflow}", f"{task.id} {task.attempt} {os.getpid()}")
    return "x" * int(task.input["mb"] * (1 << 20))


@agent("forger")
async def forger(task: Task) -> Any:
    """Put FORGED where it reaches the worker's log: a RetryLater reason on attempt 1, an
    error on attempt 2; succeed on attempt 3."""
    if task.attempt == 1:
        raise RetryLater(0.01, FORGED)
    if task.attempt == 2:
        raise RuntimeError(FORGED)
    return "ok"


@agent("lookup")
def look_up_missing_key(task: Task) -> Any:
    """Sync agent failing the way a slip does: a KeyError, deep in the agent's own code."""
    settings: dict[str, str] = {}
    return settings["missing_key"]


@agent("setter")
async def return_a_set(task: Task) -> Any:
    """Return what JSON cannot hold."""
    return {1, 2}


@agent("keyholder")
async def refused_with_a_key(task: Task) -> Any:
    """Hold SECRET in a local, as a provider client does, and fail with a scrubbed message."""
    key = Secret(SECRET)
    api_key = key.reveal()
    raise ProviderError("fake", key.scrub(f"key {api_key} refused"))


@agent("stubborn")
def stubborn(task: Task) -> Any:
    """Sync agent that outlives its timeout: sleep input['seconds'], then append this
    attempt's number and when it began and ended (Unix seconds) to the ledger ``runs:<wf>``."""
    began = time.time()
    time.sleep(task.input["seconds"])
    ledger().rpush(f"runs:{task.workflow}", f"{task.attempt} {began} {time.time()}")
    return "finished"


@agent("planner")
async def planner(task: Task) -> Any:
    """Spawn input['spawn'] (spec task mappings; TaskSpec objects with input['as_specs']) with
    result input['result']; with input['pad'], each spawned task's input is that many x's."""
    ledger().rpush(f"ledger:{task.workflow}", f"{task.id} {task.attempt} {os.getpid()}")
    pad = {"input": "x" * task.input["pad"]} if "pad" in task.input else {}
    tasks = [{**t, **pad} for t in task.input["spawn"]]  # mappings, as a spec's tasks
    if task.input.get("as_specs"):
        tasks = [TaskSpec(**{**t, "needs": tuple(t.get("needs", ()))}) for t in tasks]
    return Spawn(tasks=tasks, result=task.input.get("result"))
