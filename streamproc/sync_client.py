"""The producer API for scripts without an event loop: :class:`SyncClient`."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable, Mapping
from typing import Any, TypeVar

from streamproc.client import Client
from streamproc.spec import WorkflowSpec
from streamproc.store.state import WorkflowState

T = TypeVar("T")


class SyncClient:
    """The same API for scripts without an event loop: ``with SyncClient(url) as c: ...``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._runner = asyncio.Runner()
        self._client = self._run(self._make(*args, **kwargs))

    @staticmethod
    async def _make(*args: Any, **kwargs: Any) -> Client:
        return await Client(*args, **kwargs).__aenter__()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._run(self._client.close())
        self._runner.close()

    def submit(self, spec: WorkflowSpec | Mapping[str, Any], workflow_id: str | None = None) -> str:
        return self._run(self._client.submit(spec, workflow_id))

    def submit_many(self, specs: Iterable[Any]) -> list[str]:
        return self._run(self._client.submit_many(specs))

    def get(self, workflow_id: str) -> WorkflowState:
        return self._run(self._client.get(workflow_id))

    def wait(self, workflow_id: str, timeout: float | None = None) -> WorkflowState:
        return self._run(self._client.wait(workflow_id, timeout))

    def cancel(self, workflow_id: str, reason: str = "cancelled") -> bool:
        return self._run(self._client.cancel(workflow_id, reason))
