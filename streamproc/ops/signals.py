"""Sending a signal to a running workflow, as ``Client.signal``, ``streamproc signal`` and the
API's ``POST /workflows/{id}/signals/{name}`` all do: a waiting task resumes with its payload,
or, when none waits for its name yet, the signal is kept for the first wait that begins
(``store/lua/engine/wait.lua``)."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

from redis.asyncio import Redis

from streamproc.errors import BadSignal, Conflict, SignalTooLarge, SpecError, WorkflowNotFound
from streamproc.spec.reading import loads_json
from streamproc.store import signals as store
from streamproc.store.ids import ID_PATTERN, ID_RULE, check_id
from streamproc.store.keys import Keyspace
from streamproc.store.payloads import dumps_payload


@dataclass(frozen=True)
class SignalSent:
    """What became of a signal: ``applied`` (it resumed ``task``), ``kept`` (no task waits for
    it yet) or ``duplicate`` (its id was applied before: nothing changed)."""

    workflow: str
    name: str
    id: str
    outcome: str
    task: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_payload(raw: bytes | str) -> bytes:
    """A payload given as JSON text, compacted, or :class:`BadSignal` when it is not JSON or
    would not arrive as written (a repeated key, an integer past 64 bits)."""
    try:
        return dumps_payload(loads_json(raw, "the signal payload"))
    except SpecError as exc:
        said = str(exc)
        if said.startswith("invalid JSON: "):
            said = f"signal payload is not valid JSON: {said.removeprefix('invalid JSON: ')}"
        raise BadSignal(said) from None


def encode_payload(payload: Any) -> bytes:
    """``payload`` as JSON, or :class:`BadSignal`."""
    try:
        return dumps_payload(payload)
    except TypeError as exc:
        raise BadSignal(f"signal payload is not JSON-serialisable: {exc}") from None


async def send(
    redis: Redis,
    keyspace: Keyspace,
    workflow_id: str,
    name: str,
    payload: bytes,
    signal_id: str | None = None,
    shown: str | None = None,
) -> SignalSent:
    """Send the signal ``name`` with ``payload`` (JSON) to ``workflow_id`` (named ``shown`` in
    what it answers, when given).  A ``signal_id`` applies once (a new one when None).
    :class:`WorkflowNotFound`, :class:`Conflict` (the workflow ended, or takes no more
    signals), :class:`BadSignal` or :class:`SignalTooLarge`."""
    check_id("workflow id", workflow_id)
    shown = workflow_id if shown is None else shown
    signal_id = uuid.uuid4().hex if signal_id is None else signal_id
    for kind, value in (("signal name", name), ("signal id", signal_id)):
        if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
            raise BadSignal(f"invalid {kind} {value!r}: use {ID_RULE}")
    if len(payload) > store.MAX_SIGNAL_BYTES:
        raise SignalTooLarge(
            f"signal payload is {len(payload)} bytes, over the {store.MAX_SIGNAL_BYTES} limit"
        )
    outcome, detail = await store.signal(redis, keyspace, workflow_id, name, signal_id, payload)
    if outcome is store.Outcome.UNKNOWN:
        raise WorkflowNotFound(shown)
    if outcome is store.Outcome.FINISHED:
        raise Conflict(f"workflow {shown!r} is {detail}: it takes no signals", detail)
    if outcome in (store.Outcome.FULL, store.Outcome.MISSING):
        raise Conflict(f"workflow {shown!r} takes no more signals: {detail}")
    task = detail if outcome is store.Outcome.APPLIED else None
    return SignalSent(shown, name, signal_id, outcome.value, task)
