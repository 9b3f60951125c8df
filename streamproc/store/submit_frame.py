"""The FCALL of the usual submit, one workflow for no tenant, packed from a frame made once.

:func:`calls.submit_command` packs a call piece by piece: the workflow's four keys made as
strings, and every argument that is not a packed run encoded with its length.  In a submit of
one workflow for no tenant, all but the workflow's id and its blueprint's pieces is the same
bytes for every submit on one shard with the same agents, and the id's length fixes each
key's: so a frame holds those bytes, and a submit joins its id between them.  Laying out and
packing a one-task submit took 53,000 of its 179,000 client instructions; from a frame,
21,000, most of them the blueprint's own pieces.  The bytes are the same either way
(``tests/test_packed.py`` compares them).
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from streamproc.store import calls, packed
from streamproc.store.keys import Keyspace
from streamproc.store.layout import fixed


class Frame(NamedTuple):
    """The bytes around the id's five places (four keys, then the id itself), and how many
    arguments they make with the id's."""

    around_id: tuple[bytes, bytes, bytes, bytes, bytes]
    arguments: int


def submit_command(keyspace: Keyspace, workflow: calls.NewWorkflow) -> bytes:
    """``calls.submit_command(calls.submit_arguments(keyspace, [workflow]))``, packed."""
    workflow_id = workflow.workflow_id
    blueprint = workflow.blueprint
    shard = keyspace.shard_of(workflow_id)
    (a, b, c, d, e), arguments = _frame(keyspace, shard, tuple(blueprint.agents), len(workflow_id))
    at = workflow_id.encode()  # ASCII (check_id): id_length bytes, as the frame was made
    parts = [b"", a, at, b, at, c, at, d, at, e, at, b"\r\n"]
    parts[0] = b"*%d\r\n" % (arguments + packed.extend(parts, blueprint.pieces))
    return b"".join(parts)


@lru_cache(maxsize=1024)
def _frame(keyspace: Keyspace, shard: int, agents: tuple[str, ...], id_length: int) -> Frame:
    head, named = fixed(keyspace, shard, agents, 1)
    keys = [prefix.encode() for prefix in keyspace.workflow_prefixes(shard)]
    before = [b"$%d\r\n%b" % (len(key) + id_length, key) for key in keys]
    around: tuple[bytes, ...] = (
        calls.FCALL_SUBMIT.resp + head.resp + before[0],
        *(b"\r\n" + key for key in before[1:]),
        b"\r\n" + named.resp + calls.NO_TENANT_RUN.resp + b"$%d\r\n" % id_length,
    )
    arguments = (
        len(calls.FCALL_SUBMIT.args)
        + len(head.args)
        + 4
        + len(named.args)
        + len(calls.NO_TENANT_RUN.args)
        + 1
    )
    return Frame(around, arguments)  # type: ignore[arg-type]  # five, as made above
