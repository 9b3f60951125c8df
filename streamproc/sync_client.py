"""The producer API for scripts without an event loop: :class:`SyncClient`."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, TypeVar

from streamproc.client import Client
from streamproc.ops.listing import DEFAULT_LIMIT, WorkflowPage
from streamproc.ops.signals import SignalSent
from streamproc.spec.model import WorkflowSpec
from streamproc.store.state import WorkflowState
from streamproc.store.tenants import Quota
from streamproc.transport import event_loop

T = TypeVar("T")


class SyncClient:
    """The same API for scripts without an event loop: ``with SyncClient(url) as c: ...``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if _loop_running():
            raise RuntimeError("SyncClient cannot run inside an event loop: use Client there")
        self._runner = asyncio.Runner(loop_factory=event_loop.loop_factory())
        self._closed = False
        try:
            self._client = self._run(self._make(*args, **kwargs))
        except BaseException:
            self._runner.close()
            raise

    @staticmethod
    async def _make(*args: Any, **kwargs: Any) -> Client:
        return await Client(*args, **kwargs).__aenter__()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()  # never to run: no "never awaited" warning
            raise RuntimeError("this SyncClient is closed")
        return self._runner.run(coro)

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close its connections and its event loop; closing it again does nothing."""
        if self._closed:
            return
        try:
            self._run(self._client.close())
        finally:
            self._closed = True
            self._runner.close()

    def submit(self, spec: WorkflowSpec | Mapping[str, Any], workflow_id: str | None = None) -> str:
        return self._run(self._client.submit(spec, workflow_id))

    def submit_many(self, specs: Iterable[Any]) -> list[str]:
        return self._run(self._client.submit_many(specs))

    def get(self, workflow_id: str) -> WorkflowState:
        return self._run(self._client.get(workflow_id))

    def list(
        self,
        status: str | None = None,
        name: str | None = None,
        since: int | str | datetime | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> WorkflowPage:
        return self._run(self._client.list(status, name, since, limit, cursor))

    def wait(self, workflow_id: str, timeout: float | None = None) -> WorkflowState:
        return self._run(self._client.wait(workflow_id, timeout))

    def cancel(self, workflow_id: str, reason: str = "cancelled") -> bool:
        return self._run(self._client.cancel(workflow_id, reason))

    def signal(
        self, workflow_id: str, name: str, payload: Any = None, signal_id: str | None = None
    ) -> SignalSent:
        return self._run(self._client.signal(workflow_id, name, payload, signal_id))

    def history(self, workflow_id: str) -> builtins.list[dict[str, str]]:
        return self._run(self._client.history(workflow_id))

    def follow(
        self, workflow_id: str, start: str = "0", *, output: bool = True
    ) -> Iterator[dict[str, Any]]:
        """The workflow's events and output (``Client.follow``), each read when the loop asks
        for it."""
        events = self._client.follow(workflow_id, start, output=output)
        try:
            while (event := self._run(_next(events))) is not None:
                yield event
        finally:
            self._run(events.aclose())

    def create(
        self,
        spec: WorkflowSpec | Mapping[str, Any],
        workflow_id: str | None = None,
        quota: Quota | None = None,
    ) -> tuple[str, bool]:
        return self._run(self._client.create(spec, workflow_id, quota))


async def _next(events: AsyncIterator[dict[str, Any]]) -> dict[str, Any] | None:
    """The next event, or None at the end: a coroutine for the runner (``anext`` is not one)."""
    return await anext(events, None)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
