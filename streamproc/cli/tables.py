"""Tables for people: columns as wide as their widest cell, and a free-text column last."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple


class Column(NamedTuple):
    header: str
    key: str  # of each row
    align: str  # "<" or ">"


def table(columns: Sequence[Column], rows: list[dict[str, Any]], last: str) -> Iterator[str]:
    """The header and one line per row, each column as wide as its widest cell (ids run to
    32 characters and more), the ``last`` key's text after them, whole."""
    cells = [["-" if r[c.key] in (None, "") else str(r[c.key]) for c in columns] for r in rows]
    widths = [max([len(c.header)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]

    def line(values: list[str], tail: str) -> str:
        shown = (f"{v:{c.align}{w}}" for v, w, c in zip(values, widths, columns, strict=True))
        return "  ".join([*shown, tail]).rstrip()

    yield line([c.header for c in columns], last)
    for values, row in zip(cells, rows, strict=True):
        yield line(values, row[last])
