"""What agents are handed besides their input: the runtime of the worker running them, and
the services built on it once per worker (the prototype's agents share one toolkit)."""

from __future__ import annotations

import pytest

from streamproc import ConfigError, Keyspace, RedisSettings, Task
from streamproc.runtime import Runtime
from streamproc_agents.toolkit import toolkit


def worker_runtime() -> Runtime:
    return Runtime(RedisSettings(), Keyspace("t"))


class Service:
    """Stands for a connection pool: it records when the worker closes it."""

    def __init__(self, runtime: Runtime, log: list[str]) -> None:
        self.closed = False
        self.log = log
        runtime.on_close(self.close)

    async def close(self) -> None:
        self.closed = True
        self.log.append("service")


async def test_a_service_is_built_once_per_worker_and_closed_with_it() -> None:
    log: list[str] = []
    runtime, other = worker_runtime(), worker_runtime()

    def build(runtime: Runtime) -> Service:
        return Service(runtime, log)

    first = runtime.service(build)
    assert runtime.service(build) is first
    assert other.service(build) is not first
    await runtime.close()
    assert first.closed and log == ["service"]
    again = runtime.service(build)
    assert again is not first and not again.closed
    await runtime.close()
    await other.close()


async def test_clean_ups_run_last_registered_first() -> None:
    log: list[str] = []
    runtime = worker_runtime()

    async def connection() -> None:
        log.append("connection")

    runtime.on_close(connection)
    runtime.service(lambda runtime: Service(runtime, log))
    await runtime.close()
    assert log == ["service", "connection"]


async def test_the_agents_of_one_worker_share_one_toolkit_until_it_stops() -> None:
    runtime = worker_runtime()
    kit = toolkit(Task("wf", "a", 1, None, {}, runtime))
    assert toolkit(Task("wf", "b", 1, None, {}, runtime)) is kit
    assert toolkit(Task("wf", "a", 1, None, {}, worker_runtime())) is not kit
    await runtime.close()
    assert toolkit(Task("wf", "a", 2, None, {}, runtime)) is not kit
    await runtime.close()


def test_an_agent_called_outside_a_worker_has_no_toolkit() -> None:
    with pytest.raises(ConfigError, match="no worker is running this task"):
        toolkit(Task("wf", "a", 1, None, {}))
