"""Function arguments whose wire form (RESP) is made once, for calls that send the same runs
of arguments time after time.

A submit's arguments are mostly the same from one submit to the next: the shard's keys, the
agents, and every hash field of its spec's shape but the inputs.  Packing each argument anew
(hiredis formats each length with ``sprintf``) took a sixth of a one-task submit's client
instructions.  So a call lays out its arguments as *pieces*: single arguments, and
:class:`Packed` runs made once and kept (by the shape cache, or per shard); :func:`command`
packs only the single ones.  :func:`flat` gives the same arguments as a plain list, for
redis-py (a Cluster client, a pipeline).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import hiredis

from streamproc.store.functions import Arg

_pack: Any = hiredis.pack_command  # its stub takes a 1-tuple


class Packed(NamedTuple):
    """A run of arguments, and their RESP bulk strings."""

    args: tuple[Arg, ...]
    resp: bytes

    @classmethod
    def of(cls, args: Sequence[Arg]) -> Packed:
        args = tuple(args)
        whole: bytes = _pack(args) if args else b"*0\r\n"
        return cls(args, whole[whole.index(b"\n") + 1 :])  # without the array's header


Piece = Arg | Packed


def bulk(arg: Arg) -> bytes:
    """One argument as a RESP bulk string, as hiredis packs it."""
    return Packed.of([arg]).resp


def command(pieces: Sequence[Piece]) -> bytes:
    """The command whose arguments ``pieces`` hold, packed as RESP."""
    parts = [b""]
    parts[0] = b"*%d\r\n" % extend(parts, pieces)
    return b"".join(parts)


def extend(parts: list[bytes], pieces: Sequence[Piece]) -> int:
    """Append the RESP of the arguments ``pieces`` hold to ``parts``; return their count."""
    count = 0
    for piece in pieces:
        if isinstance(piece, Packed):
            count += len(piece.args)
            parts.append(piece.resp)
            continue
        count += 1
        if isinstance(piece, str):
            data = piece.encode()
        elif isinstance(piece, bytes):
            data = piece
        elif type(piece) is int:
            data = b"%d" % piece
        else:  # a float, a bool
            parts.append(bulk(piece))
            continue
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return count


def flat(pieces: Sequence[Piece]) -> list[Arg]:
    """The arguments ``pieces`` hold, one by one."""
    out: list[Arg] = []
    for piece in pieces:
        if isinstance(piece, Packed):
            out += piece.args
        else:
            out.append(piece)
    return out
