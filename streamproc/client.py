"""The producer API: submit workflows, follow their events, wait for their results."""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import AsyncGenerator, Collection, Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

from redis.asyncio import Redis

from streamproc import metrics
from streamproc.config import ClientSettings, RedisSettings
from streamproc.errors import WorkflowConflict, WorkflowNotFound
from streamproc.ops import follow
from streamproc.ops.history import snapshot as read_history
from streamproc.ops.listing import DEFAULT_LIMIT, Query, WorkflowPage, list_workflows, parse_since
from streamproc.ops.signals import SignalSent, encode_payload, send
from streamproc.spec.model import WorkflowSpec
from streamproc.store import admin, calls, folded, functions, tenants
from streamproc.store.codec import decode_fields
from streamproc.store.fields import parse_state
from streamproc.store.ids import check_id, check_new_workflow_id, new_workflow_id
from streamproc.store.shapes import Shapes
from streamproc.store.state import TERMINAL, WorkflowState
from streamproc.store.submits import Submits
from streamproc.transport.epoch import check_shard_count

log = logging.getLogger(__name__)
SUBMIT_CHUNK = 100  # workflows per sp_submit call: Redis serves other clients between calls
LIMITS = (calls.Submitted.IN_FLIGHT_LIMIT, calls.Submitted.STORED_LIMIT)


class Client:
    """``async with Client(url) as c: wf = await c.submit(spec); state = await c.wait(wf)``.

    ``agents``, when given, is the set of agent names workers serve: specs naming any other
    agent are refused at submit.
    """

    def __init__(
        self,
        url: str | RedisSettings = "redis://127.0.0.1:6379/0",
        settings: ClientSettings | None = None,
        agents: Collection[str] | None = None,
    ) -> None:
        if settings is not None and not isinstance(settings, ClientSettings):
            raise TypeError(f"settings is a ClientSettings, not {type(settings).__name__}")
        self.redis_settings = url if isinstance(url, RedisSettings) else RedisSettings.from_url(url)
        self.settings = settings or ClientSettings()
        self.keyspace = self.settings.keyspace
        self.agents = None if agents is None else _checked_agents(agents)
        self.redis: Redis = self.redis_settings.connect()
        self._submits = Submits(self.redis, self.settings)
        self._shapes = Shapes()

    async def __aenter__(self) -> Client:
        await functions.load(self.redis)
        await check_shard_count(self.redis, self.keyspace)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._submits.close()
        await self.redis.aclose()

    # -- submit ------------------------------------------------------------------------------

    async def submit(
        self, spec: WorkflowSpec | Mapping[str, Any], workflow_id: str | None = None
    ) -> str:
        """Validate and submit one workflow; return its id.  Submitting an id again with the
        same spec returns it without creating anything; with another spec raises
        :class:`WorkflowConflict`."""
        workflow_id, _ = await self.create(spec, workflow_id)
        return workflow_id

    async def create(
        self,
        spec: WorkflowSpec | Mapping[str, Any],
        workflow_id: str | None = None,
        quota: tenants.Quota | None = None,
    ) -> tuple[str, bool]:
        """:meth:`submit`, also telling whether this call created the workflow (False: it
        already existed with this spec), decided atomically by Redis.  With ``quota``, the
        workflow counts for its tenant, and one past a limit raises :class:`LimitReached`."""
        item = self._prepare(spec, workflow_id)
        counted = calls.NO_TENANT
        if quota is not None:
            shard = self.keyspace.shard_of(item.workflow_id)
            counted = await tenants.quota_arguments(self.redis, self.keyspace, quota, shard)
        [[outcome]] = await self._submits.send([[item]], counted)
        if quota is not None and outcome in LIMITS:
            added = item.blueprint.hash_bytes()
            raise await tenants.refusal(self.redis, self.keyspace, quota, outcome, added)
        return self._check_outcome(item.workflow_id, outcome), outcome is calls.Submitted.CREATED

    async def submit_many(
        self,
        specs: Iterable[
            WorkflowSpec | Mapping[str, Any] | tuple[WorkflowSpec | Mapping[str, Any], str]
        ],
    ) -> list[str]:
        """Submit a batch in one round trip; items are specs or (spec, workflow id) pairs."""
        if isinstance(specs, WorkflowSpec | Mapping):  # its items would be taken as specs
            raise TypeError("submit_many takes a list of specs: submit one with submit()")
        if isinstance(specs, str | bytes) or not isinstance(specs, Iterable):
            raise TypeError(f"submit_many takes a list of specs, not {type(specs).__name__}")
        prepared = [self._prepare(*_spec_and_id(item)) for item in specs]
        if not prepared:
            return []
        by_shard: dict[int, list[int]] = {}
        for position, item in enumerate(prepared):
            by_shard.setdefault(self.keyspace.shard_of(item.workflow_id), []).append(position)
        chunks = [
            positions[i : i + SUBMIT_CHUNK]
            for positions in by_shard.values()
            for i in range(0, len(positions), SUBMIT_CHUNK)
        ]
        replies = await self._submits.send([[prepared[p] for p in chunk] for chunk in chunks])
        outcomes = [calls.Submitted.EXISTS] * len(prepared)
        for chunk, reply in zip(chunks, replies, strict=True):
            for position, outcome in zip(chunk, reply, strict=True):
                outcomes[position] = outcome
        return [
            self._check_outcome(item.workflow_id, outcome)
            for item, outcome in zip(prepared, outcomes, strict=True)
        ]

    def _prepare(
        self, spec: WorkflowSpec | Mapping[str, Any], workflow_id: str | None = None
    ) -> calls.NewWorkflow:
        blueprint = self._shapes.blueprint(spec, self.settings, self.agents)
        workflow_id = (
            new_workflow_id() if workflow_id is None else check_new_workflow_id(workflow_id)
        )
        return calls.NewWorkflow(workflow_id, blueprint)

    @staticmethod
    def _check_outcome(workflow_id: str, outcome: calls.Submitted) -> str:
        if outcome is calls.Submitted.CONFLICT:
            raise WorkflowConflict(workflow_id)
        return workflow_id

    # -- control -----------------------------------------------------------------------------

    async def cancel(self, workflow_id: str, reason: str = "cancelled") -> bool:
        """Stop a running workflow; False when it had already ended.

        Tasks not yet published are skipped.  Queued and running ones are not interrupted:
        they may finish and their results are recorded, but nothing downstream of them runs.
        """
        workflow_id = check_id("workflow id", workflow_id)
        if not isinstance(reason, str):
            raise TypeError(f"a cancel's reason is text, not {reason!r}")
        outcome = await admin.cancel(self.redis, self.keyspace, workflow_id, reason)
        if outcome is admin.Cancelled.NOT_FOUND:
            raise WorkflowNotFound(workflow_id)
        if outcome is admin.Cancelled.CANCELLED:
            metrics.workflows_ended("cancelled")
        return outcome is admin.Cancelled.CANCELLED

    async def signal(
        self, workflow_id: str, name: str, payload: Any = None, signal_id: str | None = None
    ) -> SignalSent:
        """Send the signal ``name`` to a running workflow: the first task waiting for it
        resumes with ``payload``, or, when none waits yet, the signal is kept for the first
        wait for it that begins.  A ``signal_id`` applies once: sending it again is a no-op
        (outcome ``duplicate``).  See ``streamproc/ops/signals.py`` for what it refuses."""
        encoded = encode_payload(payload)
        return await send(self.redis, self.keyspace, workflow_id, name, encoded, signal_id)

    # -- observe -----------------------------------------------------------------------------

    async def list(
        self,
        status: str | None = None,
        name: str | None = None,
        since: int | str | datetime | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> WorkflowPage:
        """A page of workflows, newest first (``since``: ms epoch, ISO-8601 or a datetime);
        pass its ``cursor`` for the next page, until it is None (``ops/listing.py``)."""
        moment = None if since is None else parse_since(since)
        query = Query(status, name, moment, limit, cursor)
        return await list_workflows(self.redis, self.keyspace, query)

    async def get(self, workflow_id: str) -> WorkflowState:
        """The workflow's current state, task by task."""
        check_id("workflow id", workflow_id)
        raw = await folded.workflow_hash(self.redis, self.keyspace, workflow_id)
        if not raw:
            raise WorkflowNotFound(workflow_id)
        return parse_state(workflow_id, raw)

    async def follow(
        self, workflow_id: str, start: str = "0", *, output: bool = True
    ) -> AsyncGenerator[dict[str, Any]]:
        """Yield the workflow's lifecycle events from the first kept one (``start="$"``: from
        now on; or after an entry id), ending with ``completed``, ``failed`` or
        ``cancelled`` (from now on: at once if it already ended), merged in time order with
        the chunks its agents emit (unless ``output`` is false): ``output`` events with
        ``task``, ``att``, ``seq``, ``format`` (text or json), ``chunk`` and ``superseded``
        (its attempt is no longer the task's current one).  Each event's ``id`` is the
        ``start`` that resumes after it.  Reads the workflow's own history and output
        streams, so following one workflow never reads the others' events."""
        after = None if start == "$" else start
        async for event in follow.follow_state(
            self.redis, self.keyspace, workflow_id, after, output
        ):
            yield event

    async def history(self, workflow_id: str) -> builtins.list[dict[str, str]]:
        """Every event of the workflow so far, in order (kept as long as the workflow)."""
        kept = await read_history(self.redis, self.keyspace, check_id("workflow id", workflow_id))
        if kept.status is None:
            raise WorkflowNotFound(workflow_id)
        return [{"id": i.decode(), **decode_fields(f)} for i, f in kept.history]

    async def wait(self, workflow_id: str, timeout: float | None = None) -> WorkflowState:
        """Wait until the workflow completes, fails or is cancelled; return its final state.
        Past ``timeout`` seconds (0: ended already, or not), raise :class:`TimeoutError`
        saying what each task is doing."""
        if timeout is not None and not (
            isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout >= 0
        ):
            raise ValueError(f"timeout must be seconds, 0 or more, or None; not {timeout!r}")
        try:
            async with asyncio.timeout(timeout):
                async for _ in self.follow(workflow_id, "$", output=False):
                    pass
        except TimeoutError:
            state = await self.get(workflow_id)
            if state.status in TERMINAL:  # it ended as the time ran out
                return state
            if timeout is None:  # not the deadline's
                raise
            raise TimeoutError(
                f"workflow {workflow_id} still {state.status} after {timeout:g}s "
                f"(tasks: {state.task_states()})"
            ) from None
        return await self.get(workflow_id)


def _checked_agents(agents: Collection[str]) -> Collection[str]:
    """``agents``, kept as given (a live set may grow), once it is seen to be a collection of
    names: a string would be taken letter by letter."""
    if isinstance(agents, str | bytes) or not isinstance(agents, Collection):
        raise TypeError(f"agents is a collection of agent names, not {agents!r}")
    if not all(isinstance(name, str) for name in agents):
        raise TypeError(f"agents is a collection of agent names (text), not {list(agents)!r}")
    return agents


def _spec_and_id(
    item: WorkflowSpec | Mapping[str, Any] | tuple[WorkflowSpec | Mapping[str, Any], str],
) -> tuple[WorkflowSpec | Mapping[str, Any]] | tuple[WorkflowSpec | Mapping[str, Any], str]:
    """A ``submit_many`` item as ``_prepare``'s arguments: a spec, or a (spec, id) pair."""
    if not isinstance(item, tuple):
        return (item,)
    if len(item) != 2:
        raise TypeError(
            f"a submit_many item is a spec or a (spec, workflow id) pair, not {len(item)} values"
        )
    return item
