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

from streamproc.store.fields import TaskField, WorkflowField
from streamproc.store.folded import NAMES, shift_id
from streamproc.store.functions import ENGINE, Arg, Function
from streamproc.store.keys import Keyspace
from streamproc.store.layout import layout

TIMES = {  # the letters of the fields whose value is stowed as its distance from creation
    f.prefix.encode()
    for f in (TaskField.QUEUED, TaskField.BEGAN, TaskField.ENDED, TaskField.WAITING_SINCE)
}
ENTRY = TaskField.ENTRY.prefix.encode()  # an entry id: its <ms> is stowed that way
CONSUMER = TaskField.CONSUMER.prefix
CREATED, ORDER = WorkflowField.CREATED.encode(), WorkflowField.ORDER.encode()
ENDED, LEFT = WorkflowField.ENDED.encode(), WorkflowField.LEFT.encode()
LINE_ID = re.compile(rb'^\["(-?\d+)-', re.MULTILINE)


def stowed_archive(raw: dict[bytes, bytes], past: bytes) -> bytes | None:
    """The stowed archive of an ended workflow's hash ``raw`` (as HGETALL gives it, in its
    order) and archive ``past``; None when a value is not UTF-8 (Lua's JSON copies bytes as
    they are) or its creation time is not a number: ``sp_stow`` stows that one itself.

    It runs once for every workflow that ends, in the worker's event loop: fields stay bytes
    until they are stowed, and only those that are not numbers are decoded."""
    created_text = raw.get(CREATED, b"")
    if not created_text.isdigit():
        return None
    created = int(created_text)
    names = raw.get(ORDER, b"").split()
    tasks = len(names)
    index = {name: i for i, name in enumerate(names)}
    line: dict[str, Any] = {}
    columns: dict[bytes, dict[int, str | int]] = {}
    try:
        for field, value in raw.items():
            if field[1:2] == b":":
                letter, name = field[:2], field[2:]
                at = index.get(name)
                if at is None:
                    at = index[name] = len(names)
                    names.append(name)
                stowed: str | int
                if letter in TIMES and value.isdigit():
                    stowed = int(value) - created
                elif letter == ENTRY:
                    stowed = shift_id(value, -created).decode()
                else:
                    stowed = value.decode()
                column = columns.get(letter)
                if column is None:
                    column = columns[letter] = {}
                column[at] = stowed
            elif field == ENDED and value.isdigit():
                line[WorkflowField.ENDED.value] = int(value) - created
            elif field != LEFT or value != b"0":
                line[field.decode()] = value.decode()
        if len(names) > tasks:
            line[NAMES] = [name.decode() for name in names[tasks:]]
        for letter, values in columns.items():
            line[letter.decode()] = _column(values, len(names))
    except UnicodeDecodeError:
        return None
    lines = _shift_lines(past, -created)
    consumer = line.get(CONSUMER)
    if isinstance(consumer, str):
        lines = lines.replace(b',"by","' + consumer.encode() + b'"', b',"by",1')
    return orjson.dumps(line) + b"\n" + lines


def _column(values: dict[int, str | int], count: int) -> str | int | list[str | int | None]:
    """One value when every name has the same, else a value a name (None: none)."""
    if len(values) == count and len(set(values.values())) == 1:
        return values[0]
    return [values.get(i) for i in range(count)]


def _shift_lines(lines: bytes, by: int) -> bytes:
    """The archive's lines with the <ms> of their ids moved by ``by``."""
    return LINE_ID.sub(lambda found: b'["%d-' % (int(found[1]) + by), lines)


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
