"""The layout of KEYS and ARGV every engine function shares (``lua/engine/common.lua``): the
shard's fixed keys, the tasks and dead-letter streams of each agent named, then the hash and
history stream of each workflow the call is about, then each one's output stream, then each
one's history archive; ARGV opens with the agents' count and names, and goes on as each
function's header says.  The typed calls (``calls.py``, ``admin.py``, ``agents.py``,
``signals.py``, ``stow.py``, ``tenants.py``) lay their arguments out with :func:`layout`;
a submit, whose arguments mostly repeat, with :func:`layout_pieces`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from streamproc.store.functions import Arg
from streamproc.store.keys import Keyspace
from streamproc.store.packed import Packed, Piece


def layout(
    keyspace: Keyspace,
    shard: int,
    agents: Sequence[str],
    workflow_ids: Sequence[str],
    args: Sequence[Arg],
) -> list[Arg]:
    """numkeys, KEYS and ARGV in the layout every engine function shares."""
    head, named = fixed(keyspace, shard, tuple(agents), len(workflow_ids))
    return [*head.args, *_workflow_keys(keyspace, workflow_ids), *named.args, *args]


def layout_pieces(
    keyspace: Keyspace,
    shard: int,
    agents: Sequence[str],
    workflow_ids: Sequence[str],
    args: Sequence[Piece],
) -> list[Piece]:
    """:func:`layout` as pieces (``packed.py``): what every call of a shard, agents and
    number of workflows repeats is packed once."""
    head, named = fixed(keyspace, shard, tuple(agents), len(workflow_ids))
    return [head, *_workflow_keys(keyspace, workflow_ids), named, *args]


@lru_cache(maxsize=1024)
def fixed(
    keyspace: Keyspace, shard: int, agents: tuple[str, ...], workflows: int
) -> tuple[Packed, Packed]:
    """numkeys, the shard's fixed keys, then each agent's tasks and dead streams; the count
    of agents and their names.  The same for every call of a shard, agents and number of
    workflows, so made once."""
    keys = keyspace.head(shard)
    for agent in agents:
        keys += (keyspace.tasks(shard, agent), keyspace.dead(shard, agent))
    numkeys = len(keys) + 4 * workflows  # see _workflow_keys
    return Packed.of([numkeys, *keys]), Packed.of([len(agents), *agents])


def _workflow_keys(keyspace: Keyspace, workflow_ids: Sequence[str]) -> list[str]:
    """Each workflow's hash and history stream, then each one's output stream, then each
    one's archive."""
    if len(workflow_ids) == 1:  # a submit's: its four in that order
        return list(keyspace.workflow_keys(workflow_ids[0]))
    per_workflow = [keyspace.workflow_keys(workflow_id) for workflow_id in workflow_ids]
    keys: list[str] = []
    for hash_key, history, _, _ in per_workflow:
        keys += (hash_key, history)
    keys += (output for _, _, output, _ in per_workflow)
    keys += (past for _, _, _, past in per_workflow)
    return keys
