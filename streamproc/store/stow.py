"""An ended workflow's hash and archive made into its stowed archive, as ``history.lua``'s
``stow`` makes it (it says what the form is; ``folded.py`` reads it back), and the typed call
of ``sp_stow``, which writes it.

``sp_resolve`` leaves the workflows it ends as hashes, and the process that called it stows
them (``engine/stower.py``): turning some sixty fields into one line was a fifth of what a
workflow cost Redis, which runs every client's commands on one thread; here it costs the
caller's CPU instead.  ``sp_stow`` writes the result only where the workflow is still as it
was read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson

from streamproc.store.calls import layout
from streamproc.store.fields import TaskField, WorkflowField
from streamproc.store.folded import NAMES, shift_id
from streamproc.store.functions import ENGINE, Arg, Function
from streamproc.store.keys import Keyspace

TIME, ID = "time", "id"
OFFSETS = {  # the fields whose value is stowed as its distance from the creation time
    **{f.prefix: TIME for f in (TaskField.QUEUED, TaskField.BEGAN, TaskField.ENDED)},
    TaskField.WAITING_SINCE.prefix: TIME,
    TaskField.ENTRY.prefix: ID,
}
CONSUMER = TaskField.CONSUMER.prefix
LINE_ID = re.compile(rb'\["(-?\d+)-')


def stowed_archive(raw: dict[bytes, bytes], past: bytes) -> bytes | None:
    """The stowed archive of an ended workflow's hash ``raw`` (as HGETALL gives it, in its
    order) and archive ``past``; None when a value is not UTF-8 (Lua's JSON copies bytes as
    they are) or its creation time is not a number: ``sp_stow`` stows that one itself."""
    try:
        fields = {name.decode(): value.decode() for name, value in raw.items()}
    except UnicodeDecodeError:
        return None
    if not _whole(created_text := fields.get(WorkflowField.CREATED, "")):
        return None
    created = int(created_text)
    names = fields.get(WorkflowField.ORDER, "").split()
    tasks = len(names)
    index = {name: i for i, name in enumerate(names)}
    line: dict[str, Any] = {}
    columns: dict[str, dict[int, str | int]] = {}
    for field, value in fields.items():
        if field[1:2] == ":":
            letter, name = field[:2], field[2:]
            at = index.get(name)
            if at is None:
                at = index[name] = len(names)
                names.append(name)
            offset = OFFSETS.get(letter)
            stowed = _offset(offset, value, created) if offset else value
            columns.setdefault(letter, {})[at] = stowed
        elif field == WorkflowField.ENDED:
            line[field] = _offset(TIME, value, created)
        elif field != WorkflowField.LEFT or value != "0":
            line[field] = value
    if len(names) > tasks:
        line[NAMES] = names[tasks:]
    for letter, values in columns.items():
        line[letter] = _column(values, len(names))
    lines = _shift_lines(past, -created)
    consumer = line.get(CONSUMER)
    if isinstance(consumer, str):
        lines = lines.replace(b',"by","' + consumer.encode() + b'"', b',"by",1')
    return orjson.dumps(line) + b"\n" + lines


def _whole(text: str) -> bool:
    return text.isdigit() and text.isascii()


def _offset(offset: str, value: str, created: int) -> str | int:
    """A time (a whole number of ms) as its distance from ``created``, and an entry id's ms."""
    if offset == TIME:
        return int(value) - created if _whole(value) else value
    return shift_id(value.encode(), -created).decode()


def _column(values: dict[int, str | int], count: int) -> str | int | list[str | int | None]:
    """One value when every name has the same, else a value a name (None: none)."""
    if count == 1 and 0 in values:
        return values[0]
    column = [values.get(i) for i in range(count)]
    first = column[0]
    return first if first is not None and all(v == first for v in column) else column


def _shift_lines(lines: bytes, by: int) -> bytes:
    """The archive's lines with the <ms> of their ids moved by ``by``."""
    out = lines.split(b"\n")
    for i, line in enumerate(out):
        if found := LINE_ID.match(line):
            out[i] = b'["%d%s' % (int(found[1]) + by, line[found.end(1) :])
    return b"\n".join(out)


class Read(NamedTuple):
    """An ended workflow as its stower read it, and what it made of it."""

    workflow_id: str
    fields: int  # its hash's field count
    archived: int  # its archive's length
    stowed: bytes  # its stowed archive (b"": for sp_stow to make)


STOW = Function("sp_stow", ENGINE, int)


def stow_arguments(keyspace: Keyspace, shard: int, read: Sequence[Read]) -> list[Arg]:
    """One ``sp_stow`` call's arguments: workflows of ``shard``."""
    args: list[Arg] = [part for r in read for part in (r.fields, r.archived, r.stowed)]
    return layout(keyspace, shard, [], [r.workflow_id for r in read], args)
