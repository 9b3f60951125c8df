"""Generated workflow ids: 96 random bits each, drawn from the OS a pool at a time, never the
same twice, in threads or across a fork."""

from __future__ import annotations

import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from streamproc.store import ids as id_source
from streamproc.store.ids import new_workflow_id

ID = re.compile(r"[0-9a-f]{24}")


def test_ids_are_24_hex_digits_and_distinct_across_several_draws() -> None:
    count = 5 * id_source.IDS_PER_DRAW + 7  # more than one pool
    ids = [new_workflow_id() for _ in range(count)]
    assert all(ID.fullmatch(i) for i in ids)
    assert len(set(ids)) == count


def test_threads_drawing_at_once_never_share_an_id() -> None:
    per_thread = 3 * id_source.IDS_PER_DRAW

    def draw(_: int) -> list[str]:
        return [new_workflow_id() for _ in range(per_thread)]

    with ThreadPoolExecutor(8) as pool:
        ids = [i for batch in pool.map(draw, range(8)) for i in batch]
    assert len(set(ids)) == 8 * per_thread


@pytest.mark.skipif(sys.platform == "win32", reason="no fork")
def test_a_forked_child_does_not_draw_the_ids_its_parent_will() -> None:
    new_workflow_id()  # the pool holds ids drawn before the fork
    assert len(id_source._fresh_ids) > 0
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child process
        os.close(read_end)
        os.write(write_end, " ".join(new_workflow_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        in_child = pipe.read().split()
    os.waitpid(child, 0)
    in_parent = [new_workflow_id() for _ in range(10)]
    assert len(in_child) == 10
    assert not set(in_child) & set(in_parent)
