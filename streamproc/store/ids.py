"""Workflow, task and agent ids: the pattern every id keeps (it names Redis keys, so it may
not collide, glob or break one), the checks that say so in one line, and fresh workflow ids.
"""

from __future__ import annotations

import os
import re
from collections import deque

from streamproc.errors import SpecError

ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,128}")
ID_RULE = "1-128 characters from A-Z a-z 0-9 _ . -"  # ID_PATTERN, said in a refusal
# A task id as the engine may write it: a user's id, or an instance of a mapped task, which
# the engine names ``<id>[<index>]`` (and an instance of an instance's map, and so on).
TASK_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,128}(?:\[[0-9]{1,9}\])*")


IDS_PER_DRAW = 256
_fresh_ids: deque[str] = deque()
if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_fresh_ids.clear)


def new_workflow_id() -> str:
    """A fresh workflow id: 96 random bits in 24 hex digits (a uuid's 32 would cost every
    event, key and index entry of the workflow 8 bytes more, for bits no one needs).

    The bits come from the OS's CSPRNG, as ``secrets`` draws them, IDS_PER_DRAW ids a call:
    one call per id was a twentieth of a submit's client CPU.  ``popleft`` is atomic, so
    threads never share an id; a forked child drops the ids its parent drew."""
    while True:
        try:
            return _fresh_ids.popleft()
        except IndexError:
            drawn = os.urandom(12 * IDS_PER_DRAW).hex()
            _fresh_ids.extend(drawn[i : i + 24] for i in range(0, len(drawn), 24))


def check_id(kind: str, value: str, where: str = "") -> str:
    """Refuse ids that could collide, glob or break a key (see ``keys.py``'s table); the
    refusal says ``where`` the id came from, when given."""
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        place = f" in {where}" if where else ""
        raise SpecError(
            f"invalid {kind} {shown(value)}{place}: use {ID_RULE}",
            task=value if kind == "task id" and isinstance(value, str) else None,
        )
    return value


def check_new_workflow_id(value: str) -> str:
    """A workflow id a submit may create: as :func:`check_id` says, and with neither part
    empty when a dot splits it (a stored id's first dot ends its tenant: ``acme.`` would be
    tenant acme's empty id, which no route can name)."""
    tenant, dot, own = check_id("workflow id", value).partition(".")
    if dot and not (tenant and own):
        raise SpecError(
            f"invalid workflow id {shown(value)}: a '.' in it splits tenant from id, and "
            "neither may be empty"
        )
    return value


def shown(value: object, at_most: int = 140) -> str:
    """``value`` as a message quotes it: its repr, cut when long (an id of 5,000 characters
    would otherwise fill the screen, or a log line), with how long it was."""
    text = repr(value)
    if len(text) <= at_most:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, str) else ""
    return f"{text[:at_most]}...{size}"
