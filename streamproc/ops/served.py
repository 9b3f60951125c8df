"""Which agents a submit may name: those registered in this process (``--import`` and the
entry points), those allowed by name, and those a worker serves right now, so a producer
that cannot import an agent served elsewhere can still submit to it."""

from __future__ import annotations

from collections.abc import Collection

from streamproc.client import Client
from streamproc.errors import SpecError
from streamproc.spec.model import WorkflowSpec
from streamproc.store.ids import ID_PATTERN
from streamproc.transport.groups import served_agents


async def check_agents(client: Client, spec: WorkflowSpec, known: Collection[str]) -> None:
    """Validate ``spec`` as ``client`` will, taking as known the agents of ``known`` and those
    a worker serves right now, so :class:`SpecError` names the first task whose agent would
    never run.  Redis is asked (one round trip) only about well-formed names outside
    ``known``; the rest is :meth:`WorkflowSpec.validate`'s."""
    named = {
        t.agent for t in spec.tasks if isinstance(t.agent, str) and ID_PATTERN.fullmatch(t.agent)
    }
    served = await served_agents(client.redis, client.keyspace, sorted(named - set(known)))
    unknown = named - set(known) - served
    spec.validate({*known, *served, *unknown}, client.settings.limits)  # the rest first
    for task in spec.tasks:
        if task.agent in unknown:
            listed = ", ".join(sorted(known)) or "none"
            raise SpecError(
                f"task {task.id!r}: unknown agent {task.agent!r}: no worker serves it, and it "
                f"is not one of those registered here or allowed ({listed})",
                task=task.id,
            )
