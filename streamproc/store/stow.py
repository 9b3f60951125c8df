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
from collections.abc import Callable, Sequence
from enum import Enum
from functools import lru_cache
from operator import itemgetter
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
LINE_ID = re.compile(rb'^\["(-?\d+)-')
LINE_START = b'\n["'


def stowed_archive(raw: dict[bytes, bytes], past: bytes) -> bytes | None:
    """The stowed archive of an ended workflow's hash ``raw`` (as HGETALL gives it, in its
    order) and archive ``past``; None when a value is not UTF-8 (Lua's JSON copies bytes as
    they are) or its creation time is not a number: ``sp_stow`` stows that one itself.

    It runs once for every workflow that ends, in the worker's event loop: where each field
    goes is worked out once per set of field names (:func:`_plan`), and the values are
    decoded in one go."""
    created_text = raw.get(CREATED, b"")
    if not created_text.isdigit():
        return None
    created = int(created_text)
    try:
        plan = _plan(tuple(raw), raw.get(ORDER, b""))
        texts: list[str | None] = [*_decoded(list(raw.values())), None]
    except UnicodeDecodeError:
        return None
    values: list[bytes | None] = [*raw.values(), None]  # the last: a name's absent field
    line: dict[str, Any] = {name: texts[at] for name, at in plan.fields}
    ended = values[plan.ended] if plan.ended is not None else None
    if ended is not None and ended.isdigit():
        line[WorkflowField.ENDED.value] = int(ended) - created
    if plan.left is not None and values[plan.left] == b"0":
        del line[WorkflowField.LEFT.value]
    if plan.extra:
        line[NAMES] = plan.extra
    for letter, form, of in plan.columns:
        column: Sequence[Any] = of(texts)
        if form is _Form.TIME:
            column = [
                int(v) - created if v is not None and v.isdigit() else text
                for v, text in zip(of(values), column, strict=True)
            ]
        elif form is _Form.ENTRY:
            column = [None if v is None else _shift_entry(v, -created) for v in of(values)]
        first = column[0]
        line[letter] = (
            first if None not in column and column.count(first) == len(column) else column
        )
    lines = _shift_lines(past, -created)
    consumer = line.get(CONSUMER)
    if isinstance(consumer, str):
        lines = lines.replace(b',"by","' + consumer.encode() + b'"', b',"by",1')
    return orjson.dumps(line) + b"\n" + lines


class _Form(Enum):
    """How a per-task or signal field's values are stowed."""

    TEXT = 1
    TIME = 2  # its distance from creation, when a number
    ENTRY = 3  # an entry id, its <ms> so


class _Plan(NamedTuple):
    """Where each value of a hash with these field names goes in its stowed line: positions
    are in HGETALL's order, the last (one past the fields) standing for an absent field."""

    fields: list[tuple[str, int]]  # the workflow's own fields, by name
    ended: int | None  # where `ended` and `left` are, if the hash has them
    left: int | None
    extra: list[str]  # names after the tasks in `order` (signals)
    columns: list[tuple[str, _Form, Callable[[Sequence[Any]], Sequence[Any]]]]  # by letter:
    # what picks its values, a name's each, out of the hash's values


@lru_cache(maxsize=256)
def _plan(fields: tuple[bytes, ...], order: bytes) -> _Plan:
    """The plan of hashes with these ``fields`` and ``order``: the workflows of one shape end
    with the same fields, which HGETALL gives in the same order."""
    names = order.split()
    index = {name: i for i, name in enumerate(names)}
    own: list[tuple[str, int]] = []
    by_letter: dict[bytes, dict[int, int]] = {}
    for position, field in enumerate(fields):
        if field[1:2] == b":":
            letter, name = field[:2], field[2:]
            at = index.get(name)
            if at is None:
                at = index[name] = len(names)
                names.append(name)
            by_letter.setdefault(letter, {})[at] = position
        else:
            own.append((field.decode(), position))
    absent = len(fields)
    return _Plan(
        fields=own,
        ended=fields.index(ENDED) if ENDED in fields else None,
        left=fields.index(LEFT) if LEFT in fields else None,
        extra=[name.decode() for name in names[len(order.split()) :]],
        columns=[
            (
                letter.decode(),
                _form(letter),
                _picker([where.get(at, absent) for at in range(len(names))]),
            )
            for letter, where in by_letter.items()
        ],
    )


def _picker(positions: list[int]) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """What takes the items at ``positions`` out of a sequence, as a tuple."""
    if len(positions) == 1:
        at = positions[0]

        def one(values: Sequence[Any]) -> tuple[Any]:
            return (values[at],)

        return one
    return itemgetter(*positions)


def _shift_entry(entry_id: bytes, by: int) -> str:
    """:func:`shift_id`, as text, without its regular expression when the id is plain."""
    ms, dash, seq = entry_id.partition(b"-")
    if dash and ms.isdigit() and seq.isdigit():
        return f"{int(ms) + by}-{seq.decode()}"
    return shift_id(entry_id, by).decode()


def _form(letter: bytes) -> _Form:
    return _Form.TIME if letter in TIMES else _Form.ENTRY if letter == ENTRY else _Form.TEXT


def _decoded(values: list[bytes]) -> list[str]:
    """``values`` as text: one decode for all of them, unless one holds the separator."""
    texts = b"\0".join(values).decode().split("\0")
    return texts if len(texts) == len(values) else [value.decode() for value in values]


def _shift_lines(lines: bytes, by: int) -> bytes:
    """The archive's lines with the <ms> of their ids moved by ``by``: each line is a JSON
    array, its id first (a newline inside one is escaped), so a line starts after b'\\n["'."""

    def shifted(found: re.Match[bytes]) -> bytes:
        return b'["%d-' % (int(found[1]) + by)

    heads = (b"\n" + lines).split(LINE_START)
    for i, head in enumerate(heads[1:], 1):
        ms, dash, rest = head.partition(b"-")
        if dash and ms.isdigit():
            heads[i] = b"%d-%s" % (int(ms) + by, rest)
        else:  # a negative <ms>, or no id: as the pattern reads it
            heads[i] = LINE_ID.sub(shifted, b'["' + head)[2:]
    return LINE_START.join(heads)[1:]


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
