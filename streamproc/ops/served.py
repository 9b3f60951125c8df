"""Which agents a submit may name: those registered in this process (``--import`` and the
entry points), those allowed by name, and those a worker serves right now, so a producer
that cannot import an agent served elsewhere can still submit to it."""

from __future__ import annotations

from collections.abc import Collection

from streamproc.client import Client
from streamproc.errors import SpecError
from streamproc.spec import WorkflowSpec
from streamproc.transport.groups import served_agents


async def check_agents(client: Client, spec: WorkflowSpec, known: Collection[str]) -> None:
    """Validate ``spec`` as ``client`` will, then raise :class:`SpecError` naming the first
    task whose agent is neither ``known`` nor served by a worker: its tasks would wait
    forever.  Redis is asked only about the agents outside ``known``."""
    spec.validate(None, client.settings.limits)
    unknown = {t.agent for t in spec.tasks} - set(known)
    served = await served_agents(client.redis, client.keyspace, sorted(unknown))
    for task in spec.tasks:
        if task.agent in unknown and task.agent not in served:
            raise SpecError(
                f"task {task.id!r}: unknown agent {task.agent!r}: not registered here "
                f"(known: {', '.join(sorted(known)) or 'none'}) and no worker serves it",
                task=task.id,
            )
